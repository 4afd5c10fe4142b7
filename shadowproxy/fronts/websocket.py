"""The WebSocket client side: ``GET …/ws`` with subprotocol ``mcp``, one JSON-RPC message per text frame.

A connection is a session. Its handler task reads frames and judges each
message; a second task writes the session's outbox (see
:mod:`shadowproxy.fronts.stream_session`). aiohttp pings the client every keep-alive interval
and closes the connection when no pong comes back. Close codes say why:
1001 the proxy or the session is going away, 1003 a binary frame, 1009 a frame
over the size bound, 1011 the upstream failed, 1013 the client read too slowly.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from shadowproxy.core import limit_hits
from shadowproxy.core.errors import INVALID_REQUEST, JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import decode, error_response, request_id_of
from shadowproxy.core.tasks import spawn
from shadowproxy.fronts import http_limits
from shadowproxy.fronts.http.wire import json_error
from shadowproxy.fronts.stream_session import (
    DEFAULT_BUFFER,
    NORMAL,
    TRY_AGAIN_LATER,
    UNSUPPORTED_DATA,
    UPSTREAM_FAILED,
    Closing,
    StreamSession,
)
from shadowproxy.fronts.streams import admit, stream_places, stream_sessions
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions.admission import Guard

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy

log = logging.getLogger(__name__)

TRANSPORT = "websocket"
SUBPROTOCOL = "mcp"


class WebSocketEndpoint:
    """The ``ws`` path of one mount."""

    def __init__(
        self, mount: Mount, *, request_timeout: float, keepalive: float, max_frame: int, buffer: int = DEFAULT_BUFFER
    ) -> None:
        self.mount = mount
        self.request_timeout = request_timeout
        self.keepalive = keepalive
        self.max_frame = max_frame
        self.buffer = buffer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), heartbeat=self.keepalive, max_msg_size=self.max_frame)
        if not ws.can_prepare(request).ok:
            return json_error(426, INVALID_REQUEST, "this path takes WebSocket connections (subprotocol mcp)")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if SUBPROTOCOL not in offered:
            return json_error(400, INVALID_REQUEST, "the WebSocket subprotocol must be mcp (Sec-WebSocket-Protocol)")
        guard = http_limits.guard_of(request)
        try:
            stream = admit(
                request, self.mount, transport=TRANSPORT, buffer=self.buffer, request_timeout=self.request_timeout
            )
        except limit_hits.LimitExceeded as exc:
            return http_limits.refusal(exc)
        await ws.prepare(request)
        try:
            await stream.join(guard)
        except UpstreamError as exc:
            await ws.close(code=UPSTREAM_FAILED, message=_reason(f"upstream unavailable: {exc.message}"))
            return ws
        except limit_hits.LimitExceeded as exc:
            await ws.close(code=TRY_AGAIN_LATER, message=_reason(exc.message))
            return ws
        transport = request.transport
        if transport is not None:
            stream.abort = transport.abort
        writer = spawn(self.write(ws, stream), name="websocket-writer")
        try:
            await self.read(ws, stream, guard)
        finally:
            writer.cancel()
            await stream.finish()
        log.info("WebSocket of session %s closed with %s", stream.id[:8], ws.close_code)
        return ws

    async def read(self, ws: web.WebSocketResponse, stream: StreamSession, guard: Guard) -> None:
        """Frames in: each text frame is one message (or a batch); a bad one is answered and the rest go on."""
        requests = guard.requests
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                data = frame.data.encode()
                try:
                    decoded = decode(data)
                except JsonRpcError as exc:
                    stream.reply(error_response(request_id_of(data), exc))
                    continue
                for message in decoded if isinstance(decoded, list) else (decoded,):
                    if message.is_request and len(stream.relays) >= requests.cap:
                        stream.reply(error_response(message.id, requests.refuse(len(stream.relays))))
                        continue
                    await stream.receive(message, guard)
            elif frame.type is WSMsgType.BINARY:
                closing = Closing(
                    UNSUPPORTED_DATA, "binary frames are not MCP; send one JSON-RPC message per text frame"
                )
                stream.close(closing)
                await ws.close(code=closing.code, message=_reason(closing.reason))
                return

    async def write(self, ws: web.WebSocketResponse, stream: StreamSession) -> None:
        """Outbox to frames, until the stream is closed; then close the socket with the code that says why."""
        try:
            closing = await stream.pump(lambda data: ws.send_frame(data, WSMsgType.TEXT), _nothing, self.keepalive)
        except ConnectionError:
            return
        if not ws.closed:
            await ws.close(code=closing.code or NORMAL, message=_reason(closing.reason))


async def _nothing() -> None:
    """aiohttp's heartbeat keeps the connection alive; the pump only needs to mark the session as seen."""


def _reason(text: str) -> bytes:
    """A close reason fits in 123 bytes."""
    return text.encode()[:123]


def add_routes(app: web.Application, proxy: Proxy) -> None:
    """``<mount>/ws`` for each mount; ``/ws`` too with one upstream."""
    config = proxy.config
    for prefix, mount in stream_places(proxy.mounts):
        endpoint = WebSocketEndpoint(
            mount,
            request_timeout=config.request_timeout,
            keepalive=config.keepalive_interval,
            max_frame=config.max_body_size,
            buffer=proxy.config.stream_buffer,
        )
        app.router.add_get(f"{prefix}/ws", endpoint.handle)

    async def close_streams(app: web.Application) -> None:
        for stream in stream_sessions(proxy.mounts):
            if stream.transport == TRANSPORT:
                stream.shutdown()

    app.on_shutdown.append(close_streams)
