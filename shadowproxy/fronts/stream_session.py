"""Client sessions that live on one long stream: the legacy HTTP+SSE transport and WebSocket.

Every server message of such a session, replies included, travels on the one
stream the client holds, so a :class:`StreamSession` puts them in a bounded
:class:`Outbox` and one writer drains it onto the wire; a request's answer with
nothing queued ahead of it is written by the task that carried the request,
sparing the writer's task a wake-up. A request is judged
and then carried by a task of its own, because the stream's reader cannot wait on
it (the client may answer a sampling request before the tool call it came from
ends, or the proxy's own question about a call held for its user).
A reader too slow for what the server sends does not grow memory: when the
outbox is over its byte bound the stream is closed with a reason, and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from shadowproxy.core import limit_hits, tracing
from shadowproxy.core.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    REQUEST_TIMEOUT,
    JsonRpcError,
    UpstreamError,
    UpstreamSessionLost,
)
from shadowproxy.core.jsonrpc import Kind, Message, RequestId, error_response, notification
from shadowproxy.core.record import SessionRecord
from shadowproxy.core.tasks import spawn
from shadowproxy.core.timer import RequestTimer
from shadowproxy.fronts.client_headers import ToolHeaders, client_headers
from shadowproxy.fronts.http.wire import LONG_LIVED, is_stateless
from shadowproxy.fronts.outbox import Outbox
from shadowproxy.fronts.session_front import (
    SessionFront,
    answer_for,
    cancel_upstream,
    capture_initialize,
    listen_upstream,
)
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions.admission import Guard
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.upstreams.base import Channel
from shadowproxy.upstreams.http import HttpUpstream

log = logging.getLogger(__name__)

DEFAULT_BUFFER = 8 * 1024 * 1024
MAX_IN_FLIGHT = 256

OVERFLOWS = Counter(
    "shadowproxy_stream_overflows", "Client streams closed because their reader fell behind.", ["transport"]
)


@dataclass(frozen=True, slots=True)
class Closing:
    """Why a stream ends, as a WebSocket close code and a reason an operator can read."""

    code: int
    reason: str


NORMAL = 1000
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
UPSTREAM_FAILED = 1011
TRY_AGAIN_LATER = 1013


class StreamSession(LiveSession, SessionFront):
    """A session whose server messages all go to one client stream.

    Its 2026-07-28 requests take the mount's stateless path, as they would through the Streamable HTTP front:
    each is judged as its logical session's and sent on that session's channel, with the headers a 2026-07-28
    HTTP client would send; cancelling one lets go of it, which is how that era cancels.
    """

    __slots__ = (
        "abort",
        "closing",
        "draining",
        "listener",
        "relays",
        "request_timeout",
        "send_now",
        "stateless",
        "tools",
        "transport",
        "writing",
    )

    def __init__(
        self, record: SessionRecord, mount: Mount, *, transport: str, buffer: int, request_timeout: float
    ) -> None:
        super().__init__(record, mount)
        self.inbox: Outbox = Outbox(buffer, self._overflow)  # type: ignore[assignment]
        self.transport = transport
        self.request_timeout = request_timeout
        self.relays: dict[RequestId, asyncio.Task[None]] = {}
        self.stateless: set[RequestId] = set()
        self.tools = ToolHeaders() if isinstance(mount.upstream, HttpUpstream) else None
        self.listener: asyncio.Task[None] | None = None
        self.closing: Closing | None = None
        self.draining = False
        # How many writes to the client are under way (the pump's, and a relay's of its answer: :meth:`deliver`).
        self.writing = 0
        # The pump's writer while it runs, for :meth:`deliver`.
        self.send_now: Callable[[bytes], Awaitable[object]] | None = None
        self.abort: Callable[[], None] | None = None

    def on_unsolicited(self, message: Message) -> None:
        self.inbox.put((message, False))

    async def open(self) -> None:
        """Open the upstream channel and register the session; raises :class:`UpstreamError`."""
        self.channel = await self.mount.open_channel(self.on_unsolicited)
        self.mount.sessions.add(self)

    async def join(self, guard: Guard) -> None:
        """:meth:`open`, then the session limits again: other sessions may have begun while the upstream opened.

        Raises :class:`UpstreamError`, or :class:`limit_hits.LimitExceeded` once what it opened is closed.
        """
        await self.open()
        try:
            self.mount.sessions.admit(self.record.principal, guard, joined=True)
        except limit_hits.LimitExceeded:
            await self.finish()
            raise

    def reply(self, message: Message) -> None:
        """Queue a message that needs no judging: already judged, or made by the proxy (an error, an answer)."""
        self.inbox.put((message, True))

    async def receive(self, message: Message, guard: Guard) -> None:
        """One message from the client: judge it, then send it on; a request gets a relay task of its own."""
        if self.closing is not None or self.hold_answer(message, self):
            return
        session: LiveSession = self
        if message.is_request and message.method == "initialize":
            capture_initialize(self.record, message)
        elif message.is_request and is_stateless(message, None):
            try:
                session = self.mount.logical_session(message, self.record.principal, guard)
            except limit_hits.LimitExceeded as exc:
                self.reply(error_response(message.id, exc))
                return
        if message.is_request:
            # Judged in its relay task: a request held for a decision waits there, and the stream goes on being
            # read (the user's answer to the proxy's question comes on it).
            self._start_relay(message, session)
            return
        verdict, _ = await self.judge_client(message, session)
        self.mount.sessions.touch(session)
        if not verdict.is_forward:
            return
        message = verdict.message or message
        relay = None
        if message.method == "notifications/cancelled":
            params = message.params
            cancelled = params.get("requestId") if isinstance(params, dict) else None
            relay = self.relays.get(cancelled) if isinstance(cancelled, str | int) else None
            if relay is not None and cancelled in self.stateless:
                # Not for the session's channel: the relay lets go of the request, which cancels it upstream.
                relay.cancel()
                return
        assert self.channel is not None
        try:
            await self.channel.send(message, self.headers(message))
        except UpstreamError as exc:
            log.warning("could not pass a %s upstream: %s", message.kind.value, exc.message)
            return
        if relay is not None:
            relay.cancel()

    def _start_relay(self, message: Message, session: LiveSession) -> None:
        request_id = message.id
        assert request_id is not None
        refusal = None
        if self.draining:
            refusal = error_response(request_id, UpstreamError("the proxy is shutting down"))
        elif request_id in self.relays:
            refusal = error_response(request_id, JsonRpcError(INVALID_REQUEST, "this id is already in flight"))
        elif len(self.relays) >= MAX_IN_FLIGHT:
            text = f"over {MAX_IN_FLIGHT} requests in flight on this stream"
            refusal = error_response(request_id, JsonRpcError(INVALID_REQUEST, text))
        else:
            if session is not self:
                self.stateless.add(request_id)
            self.relays[request_id] = spawn(self.relay(message, session), name=f"{self.transport}-relay")
            return
        self.reply(refusal)

    def headers(self, message: Message) -> dict[str, str]:
        """What a Streamable HTTP client would send along, for an HTTP upstream."""
        return client_headers(message, self.record.protocol_version, self.tools)

    async def relay(self, message: Message, session: LiveSession) -> None:
        """Judge one request; carry it upstream and everything the server says for it back to the stream."""
        try:
            ask, waiting = self.asker(message), self.waiting(message)
            verdict, span = await self.judge_client(message, session, waiting=waiting, ask=ask)
            self.mount.sessions.touch(session)
            if not verdict.is_forward:
                self.reply(answer_for(message, verdict))  # type: ignore[arg-type]
            elif span is None:
                await self.carry(verdict.message or message, session, None)
            else:
                with tracing.within(span):  # the upstream call is the span's child
                    await self.carry(verdict.message or message, session, span)
        finally:
            self.relays.pop(message.id, None)  # type: ignore[arg-type]
            self.stateless.discard(message.id)  # type: ignore[arg-type]
            if self.draining and not self.relays:
                self.end(Closing(GOING_AWAY, "the proxy is shutting down"))

    async def carry(self, message: Message, session: LiveSession, span: Any) -> None:
        """Carry one judged request upstream and everything the server says for it back to the stream; end its
        span."""
        assert self.channel is not None and message.id is not None
        stateless = session is not self
        exchange = None
        answer = None
        timeout = self.request_timeout
        deadline = None if message.method in LONG_LIVED else asyncio.get_running_loop().time() + timeout
        timer = RequestTimer(deadline, timeout)
        try:
            try:
                channel = await self.mount.stateless_channel(session) if stateless else self.channel
                exchange = await channel.request(message, self.headers(message))
                while True:
                    incoming = await exchange.next()
                    final = incoming.is_reply and incoming.id == message.id
                    outgoing = await self.judge_server(incoming, session, channel, message)
                    if final and stateless and self.tools is not None and outgoing is not None:
                        # Learnt before the client sees the list, so its first call carries the headers.
                        await self.tools.learn(message, outgoing)
                    if final:
                        answer = outgoing
                        break
                    if outgoing is not None:
                        self.reply(outgoing)
            except asyncio.CancelledError:
                if timer.expired():
                    raise TimeoutError from None
                if stateless and exchange is not None:
                    await exchange.close(cancel=True)
                    exchange = None
                raise
            if message.method == "initialize" and incoming.kind is Kind.RESPONSE:
                self._initialized(incoming)
            if answer is not None:
                timer.stop()  # answered: a client slow to read it does not make the request time out
                await self.deliver(answer)
        except (JsonRpcError, TimeoutError) as exc:
            error = exc if isinstance(exc, JsonRpcError) else JsonRpcError(REQUEST_TIMEOUT, "the request timed out")
            if exchange is not None:
                await exchange.close(cancel=True)
                exchange = None
            if isinstance(exc, TimeoutError) and not stateless:
                assert self.channel is not None
                await cancel_upstream(self.channel, message.id, "timed out")
            log.warning("request %r failed: %s", message.method, error.message)
            self.mount.sessions.touch(session, errors=1)
            answer = error_response(message.id, error)
            self.reply(answer)
            if isinstance(exc, UpstreamSessionLost) and not stateless:
                # The session is gone upstream (its server exited): the client connects again and initializes.
                self.end(Closing(UPSTREAM_FAILED, "the upstream session ended; connect again and initialize"))
        finally:
            if span is not None:
                tracing.finish(span, answer)
            timer.stop()
            if exchange is not None:
                await exchange.close()

    def _initialized(self, response: Message) -> None:
        result = response.result if isinstance(response.result, dict) else {}
        self.mount.sessions.activate(self, result.get("protocolVersion"))
        if self.listener is None and self.channel is not None:
            # The upstream's own stream, when it has one; a stdio child calls ``on_unsolicited`` itself.
            headers = self.headers(notification("notifications/initialized"))
            listening = listen_upstream(self.channel, headers, self.on_unsolicited, self.id)
            self.listener = spawn(listening, name=f"{self.transport}-listen")

    def tell_client(self, message: Message) -> bool:
        self.reply(message)
        return True

    async def answer_server(self, answer: Message, channel: Channel | None) -> None:
        if channel is None:
            return
        try:
            await channel.send(answer, {})
        except UpstreamError as exc:
            log.warning("could not answer the server's request %r: %s", answer.id, exc.message)

    async def pump(
        self, write: Callable[[bytes], Awaitable[object]], idle: Callable[[], Awaitable[object]], interval: float
    ) -> Closing:
        """Write the outbox to the client until the stream must end; ``idle`` runs when nothing came for a while."""
        self.send_now = write
        try:
            while True:
                try:
                    async with asyncio.timeout(interval):
                        message, judged = await self.inbox.next()
                except TimeoutError:
                    self.record.last_seen = time.time()
                    await idle()
                    continue
                except JsonRpcError as exc:
                    return self.closing or Closing(GOING_AWAY, exc.message)
                # Counted from here: a message taken but not yet written is ahead of any :meth:`deliver` would write.
                self.writing += 1
                try:
                    if not judged:
                        outgoing = await self.judge_server(message, self, self.channel, None)
                        if outgoing is None:
                            continue
                        message = outgoing
                    await write(message.to_bytes())
                finally:
                    self.writing -= 1
        finally:
            self.send_now = None

    async def deliver(self, answer: Message) -> None:
        """A request's judged answer, written by its relay when nothing is queued or being written: the pump's task
        then need not wake for it. Otherwise it is queued behind what is."""
        send = self.send_now
        if send is None or self.writing or self.inbox or self.closing is not None:
            self.reply(answer)
            return
        self.writing += 1
        try:
            await send(answer.to_bytes())
        except ConnectionError:
            pass  # the client is gone: the stream's reader and pump see it and end the session
        finally:
            self.writing -= 1

    def close(self, closing: Closing) -> None:
        """End the stream with ``closing``; a writer stuck on a reader that does not read is cut off."""
        if self.closing is not None:
            return
        self.closing = closing
        self.inbox.shut(JsonRpcError(INTERNAL_ERROR, closing.reason))
        if self.writing and self.abort is not None:
            self.abort()

    def end(self, closing: Closing) -> None:
        """End the stream with ``closing`` once what is queued for the client has been written."""
        if self.closing is None:
            self.closing = closing
            self.inbox.fail(JsonRpcError(INTERNAL_ERROR, closing.reason))

    def shutdown(self) -> None:
        """The proxy is stopping: take no new request, and close once the ones in flight are answered."""
        self.draining = True
        if not self.relays:
            self.close(Closing(GOING_AWAY, "the proxy is shutting down"))

    def _overflow(self) -> None:
        OVERFLOWS.labels(self.transport).inc()
        bound = self.inbox.bound
        log.warning("session %s: the client reads too slowly (over %d bytes queued); closing", self.id[:8], bound)
        self.close(Closing(TRY_AGAIN_LATER, f"send buffer over {bound} bytes: the client reads too slowly"))

    async def finish(self) -> None:
        """The stream is gone: stop its tasks and close the session (and so its upstream channel).

        Shielded, since aiohttp cancels the handler whose client hung up, perhaps while it is in here.
        """
        await asyncio.shield(spawn(self._finish(), name=f"{self.transport}-finish"))

    async def _finish(self) -> None:
        tasks = [*self.relays.values(), *([self.listener] if self.listener is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.mount.sessions.close(self.id)
