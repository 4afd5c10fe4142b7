"""Client sessions that live on one long stream: the legacy HTTP+SSE transport and WebSocket.

Every server message of such a session, replies included, travels on the one
stream the client holds, so a :class:`StreamSession` puts them in a bounded
:class:`Outbox` and one writer drains it onto the wire. A request in flight is
read by a task of its own, because the stream's reader cannot wait on it (the
client may answer a sampling request before the tool call it came from ends).
A reader too slow for what the server sends does not grow memory: when the
outbox is over its byte bound the stream is closed with a reason, and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import Counter

from shadowproxy import limits
from shadowproxy.chain import Direction
from shadowproxy.errors import INTERNAL_ERROR, INVALID_REQUEST, REQUEST_TIMEOUT, JsonRpcError, UpstreamError
from shadowproxy.http_wire import PRINCIPAL, answer_for
from shadowproxy.inbox import Inbox
from shadowproxy.jsonrpc import Kind, Message, RequestId, error_response, notification
from shadowproxy.mount import Mount
from shadowproxy.session import SessionRecord, new_session_id
from shadowproxy.sessions import LiveSession
from shadowproxy.tasks import spawn
from shadowproxy.timer import RequestTimer

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

Outgoing = tuple[Message, bool]
"""A message for the client, and whether the chain has already judged it."""


class Outbox(Inbox[Outgoing]):
    """A stream's send buffer, bounded in bytes; ``on_overflow`` is called instead of growing past the bound."""

    __slots__ = ("bound", "on_overflow", "queued")

    def __init__(self, bound: int, on_overflow: Callable[[], None]) -> None:
        super().__init__()
        self.bound = bound
        self.queued = 0
        self.on_overflow = on_overflow

    def put(self, item: Outgoing) -> None:
        if self._error is not None:
            return
        size = len(item[0].to_bytes())
        if self._items and self.queued + size > self.bound:
            self.dropped += 1
            self.on_overflow()
            return
        self.queued += size
        super().put(item)

    async def next(self) -> Outgoing:
        item = await super().next()
        self.queued -= len(item[0].to_bytes())
        return item

    def shut(self, error: JsonRpcError) -> None:
        """Drop what is queued and wake the writer with ``error`` now."""
        self._items.clear()
        self.queued = 0
        self.fail(error)


class StreamSession(LiveSession):
    """A session whose server messages all go to one client stream."""

    __slots__ = ("abort", "closing", "draining", "listener", "relays", "request_timeout", "transport", "writing")

    def __init__(
        self, record: SessionRecord, mount: Mount, *, transport: str, buffer: int, request_timeout: float
    ) -> None:
        super().__init__(record, mount)
        self.inbox: Outbox = Outbox(buffer, self._overflow)  # type: ignore[assignment]
        self.transport = transport
        self.request_timeout = request_timeout
        self.relays: dict[RequestId, asyncio.Task[None]] = {}
        self.listener: asyncio.Task[None] | None = None
        self.closing: Closing | None = None
        self.draining = False
        self.writing = False
        self.abort: Callable[[], None] | None = None

    def on_unsolicited(self, message: Message) -> None:
        self.inbox.put((message, False))

    async def open(self) -> None:
        """Open the upstream channel and register the session; raises :class:`UpstreamError`."""
        self.channel = await self.mount.upstream.open(self.on_unsolicited)
        self.mount.sessions.add(self)

    async def join(self, guard: limits.Guard) -> None:
        """:meth:`open`, then the session limits again: other sessions may have begun while the upstream opened.

        Raises :class:`UpstreamError`, or :class:`limits.LimitExceeded` once what it opened is closed.
        """
        await self.open()
        try:
            guard.admit_session(self.mount.sessions.live.values(), self.record.principal, joined=True)
        except limits.LimitExceeded:
            await self.finish()
            raise

    def reply(self, message: Message) -> None:
        """Queue a message that needs no judging: already judged, or made by the proxy (an error, an answer)."""
        self.inbox.put((message, True))

    async def receive(self, message: Message) -> None:
        """One message from the client: judge it, then send it on; a request gets a relay task of its own."""
        if self.closing is not None:
            return
        if message.is_request and message.method == "initialize":
            params = message.params or {}
            self.record.client_info = params.get("clientInfo")
            self.record.client_capabilities = params.get("capabilities")
            self.record.protocol_version = params.get("protocolVersion")
            self.record.init_request = message.to_bytes().decode()
        verdict = await self.mount.judge(message, Direction.CLIENT_TO_SERVER, self, self.transport)
        self.mount.sessions.touch(self)
        if not verdict.is_forward:
            answer = answer_for(message, verdict)
            if answer is not None:
                self.reply(answer)
            return
        message = verdict.message or message
        if message.is_request:
            self._start_relay(message)
            return
        assert self.channel is not None
        try:
            await self.channel.send(message, self.headers(message))
        except UpstreamError as exc:
            log.warning("could not pass a %s upstream: %s", message.kind.value, exc.message)
            return
        if message.method == "notifications/cancelled":
            params = message.params or {}
            relay = self.relays.get(params.get("requestId"))  # type: ignore[arg-type]
            if relay is not None:
                relay.cancel()

    def _start_relay(self, message: Message) -> None:
        request_id = message.id
        assert request_id is not None
        if self.draining:
            self.reply(error_response(request_id, UpstreamError("the proxy is shutting down")))
        elif request_id in self.relays:
            self.reply(error_response(request_id, JsonRpcError(INVALID_REQUEST, "this id is already in flight")))
        elif len(self.relays) >= MAX_IN_FLIGHT:
            text = f"over {MAX_IN_FLIGHT} requests in flight on this stream"
            self.reply(error_response(request_id, JsonRpcError(INVALID_REQUEST, text)))
        else:
            self.relays[request_id] = spawn(self.relay(message), name=f"{self.transport}-relay")

    def headers(self, message: Message) -> dict[str, str]:
        """What a Streamable HTTP client would send along, for an HTTP upstream."""
        version = self.record.protocol_version
        return {"MCP-Protocol-Version": version} if version and message.method != "initialize" else {}

    async def relay(self, message: Message) -> None:
        """Carry one request upstream and everything the server says for it back to the stream."""
        assert self.channel is not None and message.id is not None
        exchange = None
        timeout = self.request_timeout
        timer = RequestTimer(asyncio.get_running_loop().time() + timeout, timeout)
        try:
            try:
                exchange = await self.channel.request(message, self.headers(message))
                while True:
                    incoming = await exchange.next()
                    final = incoming.is_reply and incoming.id == message.id
                    outgoing = await self.judge_reply(incoming, message if final else None)
                    if outgoing is not None:
                        self.reply(outgoing)
                    if final:
                        break
            except asyncio.CancelledError:
                if timer.expired():
                    raise TimeoutError from None
                raise
            if message.method == "initialize" and incoming.kind is Kind.RESPONSE:
                self._initialized(incoming)
        except (JsonRpcError, TimeoutError) as exc:
            error = exc if isinstance(exc, JsonRpcError) else JsonRpcError(REQUEST_TIMEOUT, "the request timed out")
            if exchange is not None:
                await exchange.close(cancel=True)
                exchange = None
            if isinstance(exc, TimeoutError):
                await self._send_cancel(message.id)
            log.warning("request %r failed: %s", message.method, error.message)
            self.mount.sessions.touch(self, errors=1)
            self.reply(error_response(message.id, error))
        finally:
            timer.stop()
            self.relays.pop(message.id, None)
            if exchange is not None:
                await exchange.close()
            if self.draining and not self.relays:
                self.close(Closing(GOING_AWAY, "the proxy is shutting down"))

    async def _send_cancel(self, request_id: RequestId) -> None:
        assert self.channel is not None
        try:
            await self.channel.send(notification("notifications/cancelled", {"requestId": request_id}), {})
        except UpstreamError:
            pass

    def _initialized(self, response: Message) -> None:
        result = response.result if isinstance(response.result, dict) else {}
        self.mount.sessions.activate(self, result.get("protocolVersion"))
        if self.listener is None:
            self.listener = spawn(self.listen(), name=f"{self.transport}-listen")

    async def listen(self) -> None:
        """The upstream's own stream (an HTTP GET), when it has one; stdio children call ``on_unsolicited``."""
        assert self.channel is not None
        try:
            source = await self.channel.listen(self.headers(notification("notifications/initialized")))
        except UpstreamError as exc:
            log.warning("no upstream stream for session %s: %s", self.id[:8], exc.message)
            return
        if source is None:
            return
        try:
            while True:
                self.on_unsolicited(await source.next())
        except JsonRpcError as exc:
            log.info("the upstream stream of session %s ended: %s", self.id[:8], exc.message)
        finally:
            await source.close(cancel=True)

    async def judge_reply(self, incoming: Message, request: Message | None) -> Message | None:
        """Run a server message through the chain; ``None`` means nothing goes to the client."""
        self.mount.sessions.touch(self, errors=incoming.error is not None)
        verdict = await self.mount.judge(incoming, Direction.SERVER_TO_CLIENT, self, self.transport, request)
        if verdict.is_forward:
            return verdict.message or incoming
        if incoming.is_reply:
            return error_response(incoming.id, verdict.error or JsonRpcError(INTERNAL_ERROR, "blocked"))
        answer = answer_for(incoming, verdict)
        if answer is not None and self.channel is not None:
            # A server request the proxy answered or refused: the answer goes back to the server.
            try:
                await self.channel.send(answer, {})
            except UpstreamError as exc:
                log.warning("could not answer the server's %s: %s", incoming.method, exc.message)
        return None

    async def pump(
        self, write: Callable[[bytes], Awaitable[object]], idle: Callable[[], Awaitable[object]], interval: float
    ) -> Closing:
        """Write the outbox to the client until the stream must end; ``idle`` runs when nothing came for a while."""
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
            if not judged:
                outgoing = await self.judge_reply(message, None)
                if outgoing is None:
                    continue
                message = outgoing
            self.writing = True
            await write(message.to_bytes())
            self.writing = False

    def close(self, closing: Closing) -> None:
        """End the stream with ``closing``; a writer stuck on a reader that does not read is cut off."""
        if self.closing is not None:
            return
        self.closing = closing
        self.inbox.shut(JsonRpcError(INTERNAL_ERROR, closing.reason))
        if self.writing and self.abort is not None:
            self.abort()

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


def admit(request: web.Request, mount: Mount, *, transport: str, buffer: int, request_timeout: float) -> StreamSession:
    """A new stream session for the caller, if the session limits let one more begin (else ``LimitExceeded``)."""
    principal = request.get(PRINCIPAL)
    limits.guard_of(request).admit_session(mount.sessions.live.values(), principal)
    record = SessionRecord(id=new_session_id(), upstream=mount.name, principal=principal)
    return StreamSession(record, mount, transport=transport, buffer=buffer, request_timeout=request_timeout)


def stream_places(mounts: list[Mount]) -> list[tuple[str, Mount]]:
    """Where a stream transport's routes go: under each mount's path, and at the root too for a lone upstream."""
    places = [(mount.path, mount) for mount in mounts]
    if len({mount.upstream.name for mount in mounts}) == 1:
        places.append(("", mounts[0]))
    return places


def stream_sessions(mounts: list[Mount]) -> list[StreamSession]:
    """The live stream sessions of ``mounts``, for shutdown."""
    found: list[StreamSession] = []
    for mount in mounts:
        found.extend(s for s in mount.sessions.live.values() if isinstance(s, StreamSession) and s.mount is mount)
    return found
