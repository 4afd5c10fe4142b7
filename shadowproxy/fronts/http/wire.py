"""The Streamable HTTP wire: header names, statuses, JSON replies and SSE events, shared by the client sides."""

from __future__ import annotations

from aiohttp import web

from shadowproxy.core import sse
from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import Message, decode, error_response, request_id_of
from shadowproxy.core.protocol import HANDSHAKE_VERSIONS, JSON, request_protocol_version
from shadowproxy.fronts import http_limits
from shadowproxy.fronts.http.fast_request import PlainRequest
from shadowproxy.upstreams.base import Exchange

OWN_HEADERS = frozenset({"mcp-session-id"})
MODERN_ERROR_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404}
"""The HTTP status the 2026-07-28 transport gives a JSON-RPC error code (anything else: 200)."""
LONG_LIVED = frozenset({"subscriptions/listen"})
"""Requests that are meant to stay open: no request timeout applies to them."""


def json_reply(message: Message, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=message.to_bytes(), status=status, content_type=JSON, headers=headers)


def json_error(status: int, code: int, text: str, request_id: object = None) -> web.Response:
    return json_reply(error_response(request_id, JsonRpcError(code, text)), status)  # type: ignore[arg-type]


async def read_message(
    request: web.BaseRequest | PlainRequest, body_timeout: float
) -> Message | list[Message] | web.Response:
    """The POSTed body decoded (once), or the answer to send instead: 413, 408, or 400 with the JSON-RPC error."""
    body = request.body if isinstance(request, PlainRequest) else await http_limits.read_body(request, body_timeout)
    if isinstance(body, web.Response):
        return body
    try:
        return decode(body)
    except JsonRpcError as exc:
        return json_error(400, exc.code, exc.message, request_id_of(body))


async def write_event(stream: web.StreamResponse, source: Exchange | Inbox[Message], message: Message) -> None:
    """One message event, after any frames the upstream sent without a message, with the upstream's event id."""
    if isinstance(source, Inbox):
        await stream.write(sse.encode(message.to_bytes()))
        return
    if source.controls:
        frames = b"".join(source.controls)
        source.controls.clear()  # type: ignore[union-attr]
        await stream.write(frames + sse.encode(message.to_bytes(), event_id=source.event_id))
        return
    await stream.write(sse.encode(message.to_bytes(), event_id=source.event_id))


def is_stateless(message: Message, version: str | None) -> bool:
    """A request of the 2026-07-28 kind: enveloped, a discovery, or naming a version that has no handshake.

    An unknown version goes this way too, so that the upstream answers it (-32022, with the versions
    it supports) instead of the proxy demanding a session the client never meant to have.
    """
    if request_protocol_version(message) is not None or message.method == "server/discover":
        return True
    return version is not None and version not in HANDSHAKE_VERSIONS


def reply_status(exchange: Exchange, reply: Message, modern: bool) -> int:
    """The upstream's HTTP status; over stdio, the one the 2026-07-28 transport maps the error code to."""
    if exchange.status is not None:
        return exchange.status
    error = reply.error
    if modern and error is not None:
        return MODERN_ERROR_STATUS.get(error.get("code"), 200)  # type: ignore[arg-type]
    return 200
