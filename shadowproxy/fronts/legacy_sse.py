"""The 2024-11-05 HTTP+SSE transport on the client side: ``GET …/sse`` and ``POST …/messages?session_id=``.

The GET opens a session and its one event stream: first an ``endpoint`` event
naming where to POST, then every server message as a ``message`` event. Each
POST carries one client message (or a batch) and is answered ``202 Accepted``;
what the server says back arrives on the stream. The GET handler's task is the
stream's writer; see :mod:`shadowproxy.fronts.stream_session` for the rest.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from shadowproxy.core import limit_hits, sse
from shadowproxy.core.errors import INVALID_REQUEST, SESSION_NOT_FOUND, UpstreamError
from shadowproxy.core.jsonrpc import error_response
from shadowproxy.core.protocol import EVENT_STREAM, JSON
from shadowproxy.core.sse import SSE_HEADERS
from shadowproxy.fronts import http_limits
from shadowproxy.fronts.http.wire import json_error, json_reply, read_message
from shadowproxy.fronts.principal import PRINCIPAL
from shadowproxy.fronts.stream_session import DEFAULT_BUFFER, StreamSession
from shadowproxy.fronts.streams import admit, stream_places, stream_sessions
from shadowproxy.proxy.mount import Mount

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy

log = logging.getLogger(__name__)

TRANSPORT = "sse"


class LegacySseEndpoint:
    """The ``sse`` and ``messages`` paths of one mount."""

    def __init__(
        self, mount: Mount, message_path: str, *, request_timeout: float, keepalive: float, buffer: int = DEFAULT_BUFFER
    ) -> None:
        self.mount = mount
        self.message_path = message_path
        self.request_timeout = request_timeout
        self.keepalive = keepalive
        self.buffer = buffer

    async def connect(self, request: web.Request) -> web.StreamResponse:
        """``GET …/sse``: a new session, its ``endpoint`` event, then its messages until either side leaves."""
        accept = request.headers.get("Accept", "*/*")
        if EVENT_STREAM not in accept and "*/*" not in accept:
            return json_error(406, INVALID_REQUEST, "Accept must include text/event-stream")
        try:
            stream = admit(
                request, self.mount, transport=TRANSPORT, buffer=self.buffer, request_timeout=self.request_timeout
            )
            await stream.join(http_limits.guard_of(request))
        except UpstreamError as exc:
            return json_reply(error_response(None, exc), 502)
        except limit_hits.LimitExceeded as exc:
            return http_limits.refusal(exc)
        response = web.StreamResponse(status=200, headers=SSE_HEADERS)
        transport = request.transport
        if transport is not None:
            stream.abort = transport.abort
        try:
            await response.prepare(request)
            endpoint = f"{self.message_path}?session_id={stream.id}"
            await response.write(sse.encode(endpoint.encode(), event="endpoint"))
            closing = await stream.pump(
                lambda data: response.write(sse.encode(data)), lambda: response.write(sse.KEEPALIVE), self.keepalive
            )
            log.info("legacy SSE stream of session %s closed: %s", stream.id[:8], closing.reason)
        except ConnectionError as exc:
            log.info("legacy SSE client of session %s went away: %s", stream.id[:8], exc)
        finally:
            await stream.finish()
        return response

    def session_for(self, request: web.Request) -> StreamSession | None:
        session_id = request.query.get("session_id") or request.query.get("sessionId")
        if not session_id:
            return None
        session = self.mount.sessions.get(session_id)
        if not isinstance(session, StreamSession) or session.transport != TRANSPORT or session.mount is not self.mount:
            return None
        if session.record.principal != request.get(PRINCIPAL) or session.closing is not None:
            return None
        return session

    async def post(self, request: web.Request) -> web.Response:
        """``POST …/messages?session_id=``: one client message (or a batch), answered on the stream."""
        if "session_id" not in request.query and "sessionId" not in request.query:
            return json_error(400, INVALID_REQUEST, "the session_id query parameter is required")
        session = self.session_for(request)
        if session is None:
            return json_error(404, SESSION_NOT_FOUND, "session not found; open a new one with GET /sse")
        if request.content_type != JSON:
            return json_error(415, INVALID_REQUEST, "Content-Type must be application/json")
        guard = http_limits.guard_of(request)
        decoded = await read_message(request, guard.limits.body_timeout)
        if isinstance(decoded, web.Response):
            return decoded
        requests = guard.requests
        for message in decoded if isinstance(decoded, list) else (decoded,):
            if message.is_request and len(session.relays) >= requests.cap:
                # Answered on the stream, like every reply of this transport.
                session.reply(error_response(message.id, requests.refuse(len(session.relays))))
                continue
            await session.receive(message, guard)
        return web.Response(status=202, text="Accepted")


def add_routes(app: web.Application, proxy: Proxy) -> None:
    """``<mount>/sse`` and ``<mount>/messages`` for each mount; ``/sse`` and ``/messages`` too with one upstream."""
    config = proxy.config
    for prefix, mount in stream_places(proxy.mounts):
        endpoint = LegacySseEndpoint(
            mount,
            f"{prefix}/messages",
            request_timeout=config.request_timeout,
            keepalive=config.keepalive_interval,
            buffer=proxy.config.stream_buffer,
        )
        app.router.add_get(f"{prefix}/sse", endpoint.connect)
        app.router.add_post(f"{prefix}/messages", endpoint.post)

    async def close_streams(app: web.Application) -> None:
        for stream in stream_sessions(proxy.mounts):
            if stream.transport == TRANSPORT:
                stream.shutdown()

    app.on_shutdown.append(close_streams)
