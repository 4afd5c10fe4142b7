"""The GET side of a Streamable HTTP endpoint: each session's stream for server messages tied to no request.

A session has one GET stream; a reconnect with ``Last-Event-ID`` takes over a
stream the proxy still thinks open. For upstreams without event ids the events
come from the proxy's event log (:mod:`shadowproxy.sessions.resumption`), as they do for a session the era
bridge carries to a 2026-07-28-only HTTP upstream, and a ``Last-Event-ID`` of a POST stream resumes that stream
instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from shadowproxy.core import limit_hits, sse
from shadowproxy.core.errors import INVALID_REQUEST, SESSION_NOT_FOUND, JsonRpcError, UpstreamError
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.core.protocol import EVENT_STREAM, RESUME_HEADER, SESSION_HEADER
from shadowproxy.core.sse import SSE_HEADERS
from shadowproxy.fronts import http_limits
from shadowproxy.fronts.http.endpoint_api import McpEndpoint
from shadowproxy.fronts.http.wire import json_error, write_event
from shadowproxy.fronts.principal import PRINCIPAL
from shadowproxy.sessions.eventlog import GET_STREAM, StreamLog, stream_of
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.upstreams.base import Channel, Exchange
from shadowproxy.upstreams.http import UpstreamSessionLost

log = logging.getLogger(__name__)


class SessionStreams:
    """The GET streams of one endpoint, and the tasks that serve them (for shutdown to end)."""

    def __init__(self, endpoint: McpEndpoint) -> None:
        self.endpoint = endpoint
        self.streams: set[asyncio.Task[object]] = set()
        self.listeners: dict[str, asyncio.Task[object]] = {}
        self.closing = False

    async def get(self, request: web.Request) -> web.StreamResponse:
        """The session's stream for server messages tied to no request; one per session."""
        accept = request.headers.get("Accept", "")
        if EVENT_STREAM not in accept and "*/*" not in accept:
            return json_error(406, INVALID_REQUEST, "Accept must include text/event-stream")
        session_id = request.headers.get(SESSION_HEADER)
        if session_id is None:
            return json_error(400, INVALID_REQUEST, f"{SESSION_HEADER} header is required")
        session = await self.endpoint.find_session(session_id, request.get(PRINCIPAL))
        if session is None:
            return json_error(404, SESSION_NOT_FOUND, "session not found; initialize a new one")
        try:
            http_limits.hold_stream(request, session.id)
        except limit_hits.LimitExceeded as exc:
            return http_limits.refusal(exc)
        last_event_id = request.headers.get(RESUME_HEADER)
        resumption = self.endpoint.resumption_for(session.channel)
        if resumption is not None and last_event_id:
            resumed = stream_of(last_event_id)
            if resumed is not None and resumed != GET_STREAM:
                return await self.hold(resumption.resume_post(request, session, last_event_id, resumed))
        # A GET with Last-Event-ID resumes one stream at an HTTP upstream; it is not the session's listening stream.
        resuming = resumption is None and self.endpoint.forward_headers and last_event_id is not None
        if session.listening and not resuming:
            previous = self.listeners.get(session.id)
            if last_event_id is None or previous is None:
                return json_error(409, INVALID_REQUEST, "this session already has a GET stream open")
            # The client is back with the id it saw last: its old stream is dead, whether or not we noticed.
            # It is gone before this one replays, so that what it took from the inbox is in the log or back.
            previous.cancel()
            await asyncio.wait({previous}, timeout=self.endpoint.keepalive)
        channel = session.channel
        assert channel is not None
        task = asyncio.current_task()
        if not resuming:
            session.listening = True
            if task is not None:
                self.listeners[session.id] = task
        source: Exchange | None = None
        try:
            try:
                source = await channel.listen(self.endpoint.upstream_headers(request))
            except UpstreamSessionLost:
                return await self.endpoint.lost(session, Message(Kind.NOTIFICATION, {}))
            except UpstreamError as exc:
                log.warning("no upstream GET stream for session %s: %s", session.id[:8], exc.message)
            if resuming and source is None:
                return json_error(404, SESSION_NOT_FOUND, "the upstream cannot resume that stream")
            return await self.hold(self.listen(request, session, channel, source, last_event_id))
        finally:
            if not resuming and self.listeners.get(session.id) is task:
                del self.listeners[session.id]
                session.listening = False
            if source is not None:
                await source.close(cancel=True)

    async def hold(self, serving: Coroutine[Any, Any, web.StreamResponse]) -> web.StreamResponse:
        """Serve a long-lived stream that shutdown may end (its client reconnects elsewhere or after the restart)."""
        task = asyncio.current_task()
        if task is not None:
            self.streams.add(task)
        try:
            return await serving
        except asyncio.CancelledError:
            if not self.closing:
                raise
            return web.Response(status=503)
        finally:
            if task is not None:
                self.streams.discard(task)

    async def listen(
        self,
        request: web.Request,
        session: LiveSession,
        channel: Channel,
        upstream: Exchange | None,
        last_event_id: str | None,
    ) -> web.StreamResponse:
        """The session's GET stream: what the upstream's own GET stream or the session's inbox brings."""
        source: Exchange | Inbox[Message] = upstream if upstream is not None else session.inbox
        stream = web.StreamResponse(status=200, headers=SSE_HEADERS)
        await stream.prepare(request)
        events: StreamLog | None = None
        resumption = self.endpoint.resumption_for(channel)
        if resumption is not None and upstream is None:
            events = resumption.get_log(session)
            if last_event_id and stream_of(last_event_id) == GET_STREAM:
                await resumption.replay_get(stream, session, last_event_id)
            if resumption.primes(session):
                await resumption.prime(stream, events)
        while True:
            try:
                async with asyncio.timeout(self.endpoint.keepalive):
                    message = await source.next()
            except TimeoutError:
                await stream.write(sse.KEEPALIVE)
                continue
            except JsonRpcError:
                return stream
            if events is not None:
                # Only a stream the proxy logs has events, and its source is the session's inbox.
                await self.emit(stream, events, message, session, channel)
                continue
            outgoing = await self.endpoint.judge_server(message, session, channel, None)
            if outgoing is not None:
                await write_event(stream, source, outgoing)

    async def emit(
        self,
        stream: web.StreamResponse,
        events: StreamLog,
        message: Message,
        session: LiveSession,
        channel: Channel,
    ) -> None:
        """One message from the session's inbox, judged, logged and written; a stream cut before it is logged
        loses nothing: the message goes back to the inbox, or into the log, for the client's next stream."""
        outgoing = None
        try:
            outgoing = await self.endpoint.judge_server(message, session, channel, None)
            if outgoing is None:
                return
            data = outgoing.to_bytes()
            event_id = await events.append(data)
        except asyncio.CancelledError:
            if outgoing is None:
                session.inbox.put_back(message)
            else:
                # The interrupted append may have landed after all.
                await events.append_once(outgoing.to_bytes())
            raise
        await stream.write(sse.encode(data, event_id=event_id))

    def close(self) -> None:
        """On shutdown: end every GET stream, so the client reconnects elsewhere or after the restart."""
        self.closing = True
        for task in list(self.streams):
            task.cancel()
