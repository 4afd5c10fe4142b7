"""Resumable SSE for upstreams without event ids: priming, polling, detached answers and ``Last-Event-ID``.

For a handshake session whose upstream gives no event ids (stdio, WebSocket,
legacy SSE), the Streamable HTTP endpoint streams through :class:`Resumption`:

- a POST answered as a stream opens with a *priming* event (an id, a ``retry``
  hint, no data) on sessions that negotiated 2025-11-25 or later, as the SDK's
  own server does, and every event after it carries an id from the event log;
- a POST stream that goes quiet for ``poll_after`` seconds is closed (SEP-1699
  polling), and one whose client went away is not cancelled (in the handshake
  era a dropped connection is not cancellation): in both cases the answer is
  *detached*, read to its end by one task, and logged;
- a GET with ``Last-Event-ID`` of a POST stream replays what was logged after
  it and follows the stream live until its answer (it is not polled again); one of the GET stream
  replays and then carries on as the session's GET stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from shadowproxy.core import counters, sse
from shadowproxy.core.errors import REQUEST_TIMEOUT, JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import Message, error_response
from shadowproxy.core.tasks import spawn
from shadowproxy.sessions.eventlog import GET_STREAM, StreamLog, replay, unseen
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.stores.base import SessionStore, StoredEvent
from shadowproxy.upstreams.base import Channel, Exchange

log = logging.getLogger(__name__)

PRIMING_SINCE = "2025-11-25"
"""The first protocol version whose clients expect a priming event (older ones cannot parse empty data)."""

Judge = Callable[[Message, LiveSession, Channel, Message], Awaitable[Message | None]]


class Resumption:
    """The event log side of one Streamable HTTP endpoint."""

    def __init__(
        self, store: SessionStore, *, retry: float, poll_after: float, stream_after: float, keepalive: float
    ) -> None:
        self.store = store
        self.retry_ms = round(retry * 1000) if retry else None
        self.poll_after = poll_after or None
        self.stream_after = stream_after
        self.keepalive = keepalive
        self.detached: set[asyncio.Task[None]] = set()

    def log_for(self, session: LiveSession) -> StreamLog:
        return StreamLog(self.store, session.id)

    def primes(self, session: LiveSession) -> bool:
        return (session.record.protocol_version or "") >= PRIMING_SINCE

    async def prime(self, stream: web.StreamResponse, events: StreamLog) -> None:
        event_id = await events.append(b"")
        if event_id is not None:
            await stream.write(sse.control(event_id, self.retry_ms))

    def streams_at_once(self, session: LiveSession) -> bool:
        """Whether every answer is a primed stream (``stream_after: 0``), as from the SDK's own server."""
        return self.stream_after == 0 and self.primes(session)

    def idle_limit(self, session: LiveSession, events: StreamLog | None, stream: web.StreamResponse | None) -> float:
        """How long an answer may stay silent before the proxy acts: stream it, poll, or send a keep-alive."""
        if events is None:
            return self.keepalive
        if stream is None:
            return min(self.stream_after, self.keepalive) if self.primes(session) else self.keepalive
        if self.polls(events, stream):
            return min(self.poll_after, self.keepalive)  # type: ignore[type-var]
        return self.keepalive

    def polls(self, events: StreamLog | None, stream: web.StreamResponse | None) -> bool:
        """Whether a quiet stream is closed now: polling is on and the client holds an id to come back with."""
        return self.poll_after is not None and stream is not None and events is not None and events.last_id is not None

    async def emit(self, stream: web.StreamResponse, events: StreamLog, message: Message) -> None:
        data = message.to_bytes()
        await stream.write(sse.encode(data, event_id=await events.append(data)))

    def detach(
        self,
        exchange: Exchange,
        events: StreamLog,
        request: Message,
        session: LiveSession,
        channel: Channel,
        deadline: float | None,
        judge: Judge,
        reason: str,
        unlogged: Message | None,
    ) -> None:
        """Read the rest of an answer nobody is streaming into the log, for the client to resume.

        ``unlogged`` is a message whose append a disconnect interrupted: the store may hold it or not.
        """
        counters.stream_detached(reason)
        task = spawn(
            self._drain(exchange, events, request, session, channel, deadline, judge, unlogged),
            name=f"detached answer {events.stream_id}",
        )
        self.detached.add(task)
        task.add_done_callback(self.detached.discard)

    async def _drain(
        self,
        exchange: Exchange,
        events: StreamLog,
        request: Message,
        session: LiveSession,
        channel: Channel,
        deadline: float | None,
        judge: Judge,
        unlogged: Message | None,
    ) -> None:
        try:
            if unlogged is not None:
                await events.append_once(unlogged.to_bytes())
                if unlogged.is_reply and unlogged.id == request.id:
                    return
            async with asyncio.timeout_at(deadline):
                while True:
                    incoming = await exchange.next()
                    final = incoming.is_reply and incoming.id == request.id
                    outgoing = await judge(incoming, session, channel, request)
                    if outgoing is not None:
                        await events.append(outgoing.to_bytes())
                    if final:
                        return
        except (UpstreamError, TimeoutError) as exc:
            error = exc if isinstance(exc, JsonRpcError) else JsonRpcError(REQUEST_TIMEOUT, "the request timed out")
            log.warning("detached request %r failed: %s", request.method, error.message)
            await events.append(error_response(request.id, error).to_bytes())
        finally:
            session.live_streams.pop(events.stream_id, None)
            events.end()
            await exchange.close(cancel=False)

    async def resume_post(
        self, request: web.Request, session: LiveSession, last_event_id: str, stream_id: str
    ) -> web.StreamResponse:
        """A POST stream picked up again: what was logged after ``last_event_id``, then its live rest."""
        live = session.live_streams.get(stream_id)
        follower = live.follow() if live is not None else None
        stream = web.StreamResponse(status=200, headers=sse.SSE_HEADERS)
        await stream.prepare(request)
        seen: set[str] = set()
        try:
            for event in unseen(await replay(self.store, session.id, last_event_id), seen):
                await stream.write(sse.encode(event.data, event_id=event.event_id))
            # A resumed stream follows the answer to its end: the client has come back once already.
            while follower is not None:
                try:
                    async with asyncio.timeout(self.keepalive):
                        followed: StoredEvent | None = await follower.next()
                except TimeoutError:
                    await stream.write(sse.KEEPALIVE)
                    continue
                if followed is None:
                    break
                for event in unseen([followed], seen):
                    await stream.write(sse.encode(event.data, event_id=event.event_id))
        finally:
            if live is not None and follower is not None:
                live.unfollow(follower)
        await stream.write_eof()
        return stream

    async def replay_get(self, stream: web.StreamResponse, session: LiveSession, last_event_id: str) -> None:
        """The GET stream's events after ``last_event_id``, before it carries on live."""
        for event in unseen(await replay(self.store, session.id, last_event_id), set()):
            await stream.write(sse.encode(event.data, event_id=event.event_id))

    def get_log(self, session: LiveSession) -> StreamLog:
        return StreamLog(self.store, session.id, GET_STREAM)
