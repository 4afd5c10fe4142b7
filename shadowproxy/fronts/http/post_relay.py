"""One POST's request carried upstream, and everything the server says for it carried back to the client.

The answer starts as nothing: a single reply goes back as ``application/json``. The first message that cannot
(a notification or server request before the reply, an upstream that streams to a client that takes streams)
opens a ``text/event-stream``, and so does silence: past the keep-alive interval the client gets keep-alive
comments, or, when the proxy makes the event ids, a priming event it can resume from. Every message the proxy
numbers is in the session's event log before it is written, so that a client that goes away can resume.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from shadowproxy.core import counters, logs, sse
from shadowproxy.core.errors import REQUEST_TIMEOUT, JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import Message, error_response
from shadowproxy.core.sse import SSE_HEADERS
from shadowproxy.core.timer import RequestTimer
from shadowproxy.fronts.http.endpoint_api import McpEndpoint
from shadowproxy.fronts.http.fast_request import event_stream
from shadowproxy.fronts.http.wire import LONG_LIVED, json_reply, reply_status, write_event
from shadowproxy.fronts.session_front import cancel_upstream
from shadowproxy.sessions.eventlog import StreamLog
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.sessions.resumption import PRIMING_SINCE
from shadowproxy.upstreams.base import Channel, Exchange
from shadowproxy.upstreams.http import StreamPaused, UpstreamSessionLost

log = logging.getLogger("shadowproxy.fronts.http.endpoint")

Answer = tuple[web.StreamResponse, Message | None]
"""What the client got (a JSON reply, or the stream that carried the answer), and the final reply, if any."""


class PostRelay:
    """The exchange of one POST: its request, the upstream's messages for it, and the answer the client gets."""

    __slots__ = (
        "_events",
        "channel",
        "deadline",
        "endpoint",
        "exchange",
        "final",
        "headers",
        "logs",
        "message",
        "modern",
        "primed",
        "request",
        "resumption",
        "session",
        "stream",
        "unlogged",
        "wants_sse",
    )

    def __init__(
        self,
        endpoint: McpEndpoint,
        request: web.Request,
        message: Message,
        session: LiveSession,
        channel: Channel,
        wants_sse: bool,
        modern: bool,
        headers: dict[str, str] | None,
    ) -> None:
        self.endpoint = endpoint
        self.request = request
        self.message = message
        self.session = session
        self.channel = channel
        self.wants_sse = wants_sse
        self.modern = modern
        # The session's id on the answer to an initialize; ``None`` for a request of a session that has begun.
        self.headers = headers
        resumption = self.resumption = endpoint.resumption_for(channel)
        self.stream: web.StreamResponse | None = None
        self.exchange: Exchange | None = None
        self.final: Message | None = None
        # Whether the proxy numbers this answer's events (a session's request, not its initialize, when the upstream
        # has no ids and the client can resume); the log itself is made when a stream opens (:attr:`events`).
        self.logs = (
            headers is None
            and resumption is not None
            and not modern
            and wants_sse
            and session.id in endpoint.sessions.live
        )
        self._events: StreamLog | None = None
        # Whether a stream of this session opens with a priming event (Resumption.primes, read once per request).
        self.primed = self.logs and (session.record.protocol_version or "") >= PRIMING_SINCE
        # A message whose append to the event log a disconnect may have cut short.
        self.unlogged: Message | None = None
        loop = asyncio.get_running_loop()
        self.deadline = None if message.method in LONG_LIVED else loop.time() + endpoint.request_timeout

    async def run(self) -> Answer:
        """Send the request upstream and carry everything the server says for it back to the client."""
        endpoint, message, session = self.endpoint, self.message, self.session
        resumption = self.resumption
        idle = self.idle()
        timer = RequestTimer(self.deadline, idle)
        endpoint.in_flight += 1
        try:
            try:
                sent = counters.clock()
                exchange = self.exchange = await self.channel.request(message, endpoint.upstream_headers(self.request))
                if self.primed and resumption is not None and resumption.stream_after == 0:
                    # Every answer a primed stream (stream_after: 0), as from the SDK's own server.
                    self.stream = await self.open_stream(self.events)
                while self.final is None:
                    timer.wait(self.idle())
                    try:
                        incoming = await exchange.next()
                    except asyncio.CancelledError:
                        if not timer.expired():
                            raise
                        if timer.past_deadline():
                            raise TimeoutError from None
                        if await self.silence():
                            continue
                        break
                    timer.waiting = False
                    if incoming.is_reply and incoming.id == message.id:
                        self.final = incoming
                        if self.modern and endpoint.header_check is not None and message.method == "tools/list":
                            endpoint.header_check.learn(incoming)
                        counters.answered(self.request, endpoint.mount.name, message.method, sent)
                    outgoing = await endpoint.judge_server(incoming, session, self.channel, message)
                    if outgoing is None:
                        continue
                    if self.final is not None and self.stream is None and not (exchange.streaming and self.wants_sse):
                        status = reply_status(exchange, outgoing, self.modern)
                        return json_reply(outgoing, status, self.headers), self.final
                    await self.stream_message(exchange, outgoing)
            except asyncio.CancelledError:
                if timer.expired():
                    raise TimeoutError from None
                raise
        except StreamPaused:
            await self.paused()
        except (asyncio.CancelledError, ConnectionResetError) as exc:
            await self.client_gone()
            if isinstance(exc, asyncio.CancelledError) or self.stream is None:
                raise
            return self.stream, self.final
        except UpstreamSessionLost:
            return await endpoint.lost(session, message), None
        except (UpstreamError, TimeoutError) as exc:
            reply = await self.failed(exc)
            if reply is not None:
                return reply, self.final
        except JsonRpcError as exc:
            return json_reply(error_response(message.id, exc), 400, self.headers), None
        finally:
            timer.stop()
            endpoint.in_flight -= 1
            events = self._events
            if events is not None:
                if self.stream is not None:
                    session.live_streams.pop(events.stream_id, None)
                events.end()
            if self.exchange is not None:
                await self.exchange.close()
        assert self.stream is not None
        await self.stream.write_eof()
        return self.stream, self.final

    async def silence(self) -> bool:
        """The upstream said nothing for a while: keep the client's answer alive; ``False`` once the rest of the
        answer is left for the client to poll."""
        resumption, events = self.resumption, self.events
        if events is not None and self.stream is None and resumption is not None:
            # A slow answer becomes a resumable stream: a priming event, then what follows.
            self.stream = await self.open_stream(events)
            if resumption.primes(self.session):
                return True
        elif resumption is not None and resumption.polls(events, self.stream):
            # Polling: the client holds an event id; it comes back for the rest.
            assert self.stream is not None and events is not None and self.exchange is not None
            self.detach("poll")
            return False
        # A silent answer becomes an event stream with keep-alive comments, so that intermediaries do not cut it.
        if self.wants_sse:
            if self.stream is None:
                self.stream = await self.open_stream(events)
            await self.stream.write(sse.KEEPALIVE)
        return True

    async def stream_message(self, exchange: Exchange, outgoing: Message) -> None:
        """A message on the client's event stream, opened for it if need be (a client that takes only JSON gets
        the reply alone)."""
        if self.stream is None:
            if not self.wants_sse:
                return
            self.stream = await self.open_stream(self.events)
        events = self.events
        if events is not None:
            # Logged before it is written: until the log holds it, a disconnect must not lose it.
            self.unlogged = outgoing
            data = outgoing.to_bytes()
            event_id = await events.append(data)
            self.unlogged = None
            await self.stream.write(sse.encode(data, event_id=event_id))
        else:
            await write_event(self.stream, exchange, outgoing)

    async def paused(self) -> None:
        """The upstream closed a resumable stream mid-answer (2025-11-25 polling): the client gets the same
        priming event and retry hint, and resumes at the upstream through its GET stream."""
        if self.stream is None:
            self.stream = await self.open_stream(None)
        exchange = self.exchange
        if exchange is not None and exchange.controls:
            await self.stream.write(b"".join(exchange.controls))

    async def client_gone(self) -> None:
        """The client went away. In 2026-07-28 that is cancellation; in the handshake era it is not, and a client
        that holds an event id resumes the answer from the event log."""
        exchange = self.exchange
        if exchange is None:
            return
        resumable = self.stream is not None and self.resumption is not None and self.events is not None
        if resumable and (self.final is None or self.unlogged):
            self.detach("disconnect")
        else:
            await exchange.close(cancel=self.modern)
            self.exchange = None

    async def failed(self, exc: UpstreamError | TimeoutError) -> web.Response | None:
        """The upstream failed the request, or it timed out: the client's error reply (``None``: on the stream)."""
        error = exc if isinstance(exc, JsonRpcError) else JsonRpcError(REQUEST_TIMEOUT, "the request timed out")
        message, exchange = self.message, self.exchange
        if exchange is not None:
            await exchange.close(cancel=True)
            if error.code == REQUEST_TIMEOUT:
                await cancel_upstream(self.channel, message.id, "timed out")
            self.exchange = None
        log.warning("request %r failed: %s", message.method, error.message)
        endpoint = self.endpoint
        counters.upstream_failed(endpoint.mount.name)
        endpoint.sessions.touch(self.session, errors=1)
        self.final = error_response(message.id, error)
        if self.stream is None:
            return json_reply(self.final, 200 if isinstance(exc, TimeoutError) else 502, self.headers)
        resumption = self.resumption
        if self.events is not None and resumption is not None:
            await resumption.emit(self.stream, self.events, self.final)
        else:
            await self.stream.write(sse.encode(self.final.to_bytes()))
        return None

    def detach(self, reason: str) -> None:
        """The rest of the answer is read into the event log by a task of its own, for the client to resume."""
        resumption, exchange, events = self.resumption, self.exchange, self.events
        assert resumption is not None and exchange is not None and events is not None
        judge = self.endpoint.judge_server
        message, session, channel, deadline = self.message, self.session, self.channel, self.deadline
        resumption.detach(exchange, events, message, session, channel, deadline, judge, reason, self.unlogged)
        self.exchange = self.events = None

    @property
    def events(self) -> StreamLog | None:
        """The event log of this request's stream, when the proxy makes the ids and the client can resume; made on
        first use, since a plain JSON answer never needs one."""
        events = self._events
        if events is None and self.logs:
            assert self.resumption is not None
            events = self._events = self.resumption.log_for(self.session)
        return events

    @events.setter
    def events(self, events: StreamLog | None) -> None:
        self._events = events
        self.logs = events is not None
        self.primed = self.primed and self.logs

    def idle(self) -> float:
        """How long the answer may stay silent before the proxy acts (:meth:`Resumption.idle_limit`; read here
        while nothing is streamed, which is every wait of a plain JSON answer)."""
        resumption = self.resumption
        if resumption is None:
            return self.endpoint.keepalive
        if self.stream is None:
            return min(resumption.stream_after, resumption.keepalive) if self.primed else resumption.keepalive
        return resumption.idle_limit(self.session, self.events, self.stream)

    async def open_stream(self, events: StreamLog | None) -> web.StreamResponse:
        headers = self.headers
        stream = event_stream(self.request, {**SSE_HEADERS, **headers} if headers else SSE_HEADERS)
        # Prepared here, before the front door could tag the answer.
        logs.tag(stream.headers)
        await stream.prepare(self.request)
        resumption = self.resumption
        if events is not None and resumption is not None:
            self.session.live_streams[events.stream_id] = events
            if resumption.primes(self.session):
                await resumption.prime(stream, events)
        return stream
