"""The stdio client side: an MCP client launches ``shadowproxy stdio -- CMD`` in place of the server.

The whole process is one session and one task. Lines from our stdin and lines
from the server arrive by callbacks and go into one inbox; the task judges each
message with the chain and writes it to the other side, in order. What differs
with the server is in two classes: :class:`~shadowproxy.fronts.stdio.child.StdioChildFront`
runs the server as a child process (and passes what the chain has nothing to say
on in the pipe callbacks themselves), :class:`~shadowproxy.fronts.stdio.bridge.StdioBridgeFront`
is the stdio-to-HTTP bridge (``--upstream URL``).

Stdin and stdout may be pipes or files (:mod:`~shadowproxy.fronts.stdio.pipes`). When stdin ends, the requests
already forwarded are still answered, within the request timeout; then the proxy exits.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from shadowproxy.core import counters, tracing
from shadowproxy.core.errors import REQUEST_TIMEOUT, JsonRpcError, UpstreamError
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import ERROR, REQUEST, RESPONSE, Message, error_response
from shadowproxy.core.record import SessionRecord, new_session_id
from shadowproxy.fronts.session_front import SessionFront, answer_for, capture_initialize
from shadowproxy.fronts.stdio.era_route import EraRoute
from shadowproxy.fronts.stdio.pipes import CLIENT, LineReader, Output, Writer, close_output, open_input, open_output
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.upstreams.base import Channel

__all__ = ["CLIENT", "SERVER", "LineReader", "StdioFront"]

log = logging.getLogger(__name__)

SERVER, CLIENT_EOF, SERVER_EXIT, STOP, TIMED_OUT = range(CLIENT + 1, CLIENT + 6)
# Messages waiting for the task beyond which the client's pipe is not read until they are taken: memory stays
# bounded when a client writes faster than the server (or the chain) takes its requests.
INBOX_HIGH = 128
Event = tuple[int, Any]


class StdioFront(SessionFront, abc.ABC):
    """The session, the pipes and the task of a stdio front; a subclass is the server side."""

    transport = "stdio"

    def __init__(self, mount: Mount, *, request_timeout: float | None = None) -> None:
        self.mount = mount
        # How long the answers to what was forwarded may take once stdin has ended; ``None``: as long as they take.
        self.request_timeout = request_timeout
        self.inbox: Inbox[Event] = Inbox()
        record = SessionRecord(id=new_session_id(), upstream=mount.name, transport=self.transport)
        self.session = LiveSession(record, mount)
        # Where the session's messages go once the era bridge carries them (shadowproxy.bridge).
        self.era_route = EraRoute(mount, self.session, self.from_upstream)
        # The client's requests on their way to the server, and when each was sent (a perf_counter reading).
        self.inflight: dict[object, tuple[Message, float]] = {}
        # With tracing on, the spans of the requests in flight, ended by their replies.
        self.spans: dict[object, Any] = {}
        self.out: Output | None = None
        self.writer = Writer()
        # Our stdin. A file there is read by the task ``input``, which waits for ``emptied`` while the inbox holds
        # what it read; a pipe is held while the inbox is over INBOX_HIGH.
        self.reader = LineReader(self.receive, self.reject, lambda: self.inbox.put((CLIENT_EOF, None)))
        self.input: asyncio.Task[None] | None = None
        self.emptied: asyncio.Future[None] | None = None
        # Stdin has ended: the answers to what is in flight are awaited, until ``deadline``.
        self.ending = False
        self.deadline: asyncio.TimerHandle | None = None
        self.to_client: list[bytes] = []
        # True while the task waits for the inbox with nothing queued: messages may then be handled as they arrive.
        self.idle = False
        # Messages (and errors among them) handled in the pipe callbacks, counted on the session once per write.
        self.untouched = 0
        self.untouched_errors = 0

    ask_era: Callable[[], Awaitable[bool]] | None = None
    """How the front asks its own server whether it speaks 2026-07-28, if it has one (the era bridge's question)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Reach the server: its messages go to :meth:`receive` (or the inbox) from here on."""

    @abc.abstractmethod
    def route(self, message: Message) -> bool:
        """Asked of a client message before the chain sees it: whether it goes to the upstream's stateless
        process rather than the session's server."""

    @abc.abstractmethod
    async def forward(self, message: Message, stateless: bool) -> None:
        """Send a client message the chain let through to the server (``stateless``: as :meth:`route` said)."""

    async def drain(self) -> None:
        """Wait while the server's side cannot take more."""

    def initialized(self) -> None:
        """The server answered the client's ``initialize``."""

    async def close_upstream(self) -> None:
        """Let go of the server."""

    def write(self, message: Message) -> None:
        """Queue a line for the client; :meth:`flush` writes every queued line at once."""
        self.to_client.append(message.to_bytes())

    def flush(self) -> None:
        """One write to the client for all that is queued: the task writes what it judged in one go."""
        if self.to_client:
            lines, self.to_client = self.to_client, []
            assert self.out is not None
            self.out.write(b"\n".join(lines) + b"\n")
        # After the writes: the other side is already at work while the session is updated.
        if self.untouched:
            self.mount.sessions.touch(self.session, messages=self.untouched, errors=self.untouched_errors)
            self.untouched = self.untouched_errors = 0

    def receive(self, source: int, messages: Iterator[Message]) -> None:
        """Where a read's worth of messages arrives: each goes to the task, in order."""
        if source == CLIENT and self.mount.holds.parked:
            messages = self.unheld(messages)
        for message in messages:
            self.inbox.put((source, message))
        self.flush()
        if source == CLIENT and len(self.inbox) > INBOX_HIGH:
            self.reader.hold()

    def unheld(self, messages: Iterator[Message]) -> Iterator[Message]:
        """The client's messages but its answers to the proxy's questions about held calls, which are taken here:
        the task that would read them waits in the held call."""
        return (message for message in messages if not self.hold_answer(message, self.session))

    def reject(self, line: bytes | None, error: JsonRpcError) -> None:
        log.warning("client sent a bad message (%s): %.200r", error.message, line)
        self.write(error_response(None, error))
        self.flush()

    async def serve(self) -> int:
        self.out = await open_output(self.writer)
        self.input = await open_input(self.reader, self.ready)
        await self.start()
        self.mount.sessions.add(self.session)
        while True:
            if not self.inbox:
                self.flush()
                self.reader.release()
                emptied, self.emptied = self.emptied, None
                if emptied is not None and not emptied.done():
                    emptied.set_result(None)
                if self.writer.paused is not None:
                    await self.writer.paused
                await self.drain()
            # Once stdin has ended every message goes through the task, which sees the last answer go out.
            self.idle = not self.inbox and not self.ending
            kind, message = await self.inbox.next()
            self.idle = False
            if kind == CLIENT:
                await self.from_client(message)
            elif kind == SERVER:
                await self.from_server(message)
            elif kind == CLIENT_EOF:
                self.input_ended()
            elif kind == SERVER_EXIT:
                code = self.upstream_exited(message)
                self.flush()
                return code
            else:
                if kind == TIMED_OUT:
                    self.timed_out()
                self.flush()
                return 0
            if self.ending and not self.inflight:
                self.flush()
                return 0

    async def ready(self) -> None:
        """Before a file on stdin is read further: what was read has been taken, and neither side is full."""
        if self.inbox:
            self.emptied = asyncio.get_running_loop().create_future()
            await self.emptied
        if self.writer.paused is not None:
            await self.writer.paused
        await self.drain()
        await asyncio.sleep(0)  # a file is never slow to read: the answers get their turn

    def stop(self) -> None:
        """A signal: end now."""
        self.inbox.put((STOP, None))

    def input_ended(self) -> None:
        """Stdin is over; the requests already forwarded are answered first (a client piping a file of requests
        waits for every answer), for up to the request timeout."""
        if self.ending:
            return
        self.ending = True
        if self.inflight and self.request_timeout is not None:
            loop = asyncio.get_running_loop()
            self.deadline = loop.call_later(self.request_timeout, self.inbox.put, (TIMED_OUT, None))

    def timed_out(self) -> None:
        error = JsonRpcError(REQUEST_TIMEOUT, "the request timed out")
        log.warning(
            "%d request(s) not answered within %ss of the end of stdin", len(self.inflight), self.request_timeout
        )
        for request_id in self.inflight:
            self.write(error_response(request_id, error))  # type: ignore[arg-type]
        self.inflight.clear()

    def upstream_exited(self, code: int | None) -> int:
        """The server process is gone: every request still in flight gets the error; the exit code to end with."""
        code = code or 0
        error = UpstreamError(f"upstream {self.mount.name!r} exited with code {code} before answering")
        for request_id in self.inflight:
            self.write(error_response(request_id, error))  # type: ignore[arg-type]
        log.error("upstream %s exited with code %s", self.mount.name, code)
        counters.upstream_failed(self.mount.name)
        return code if code else 1

    def note_initialize(self, message: Message) -> None:
        if message.method == "initialize":
            capture_initialize(self.session.record, message)

    async def from_client(self, message: Message) -> None:
        self.note_initialize(message)
        stateless = self.route(message)
        ask, waiting = self.asker(message), self.waiting(message)
        verdict, span = await self.judge_client(message, self.session, waiting=waiting, ask=ask)
        self.mount.sessions.touch(self.session)
        if not verdict.is_forward:
            answer = answer_for(message, verdict)
            if answer is not None:
                self.write(answer)
            return
        message = verdict.message or message
        route = self.era_route
        if route.pending and message.kind is REQUEST:
            try:
                await route.first(message, self.ask_era)
            except UpstreamError as exc:
                self.write(error_response(message.data["id"], exc))
                return
        if route.channel is not None:
            if message.kind is REQUEST:
                self.sent(message)
            elif message.method == "notifications/cancelled" and isinstance(message.params, dict):
                # A cancelled bridged request gets no answer: the end of stdin does not wait for one.
                self.inflight.pop(message.params.get("requestId"), None)
        if span is None:
            await self.send_on(message, stateless)
            return
        self.spans[message.data["id"]] = span
        with tracing.within(span):  # a task reading the answer (the bridge, a stateless request) carries it on
            await self.send_on(message, stateless)

    async def send_on(self, message: Message, stateless: bool) -> None:
        """A judged client message to the era bridge's channel, once it carries the session, else to the server."""
        if self.era_route.channel is not None:
            await self.era_route.forward(message)
        else:
            await self.forward(message, stateless)

    def from_upstream(self, message: Message) -> None:
        """What a task read from the upstream: judged and written by the front's task, in order."""
        self.inbox.put((SERVER, message))

    def sent(self, request: Message) -> None:
        """A request of the client's is on its way to the server: in flight until :meth:`answered`."""
        self.inflight[request.data["id"]] = (request, time.perf_counter())

    def answered(self, message: Message) -> Message | None:
        """The request ``message`` answers, if it is a reply to one of ours: no longer in flight."""
        kind = message.kind
        sent = self.inflight.pop(message.data["id"], None) if kind is RESPONSE or kind is ERROR else None
        if sent is None:
            return None
        if self.spans:
            span = self.spans.pop(message.data["id"], None)
            if span is not None:
                tracing.finish(span, message)
        request, at = sent
        method = request.data["method"]
        counters.answered(None, self.mount.name, method, at)
        if method == "initialize" and kind is RESPONSE:
            result = message.result if isinstance(message.result, dict) else {}
            self.mount.sessions.activate(self.session, result.get("protocolVersion"))
            self.initialized()
        return request

    async def from_server(self, message: Message) -> None:
        request = self.answered(message)
        outgoing = await self.judge_server(message, self.session, None, request)
        if outgoing is not None:
            self.write(outgoing)

    def tell_client(self, message: Message) -> bool:
        self.write(message)
        self.flush()
        return True

    async def answer_server(self, answer: Message, channel: Channel | None) -> None:
        if self.era_route.channel is not None:
            await self.era_route.forward(answer)
            return
        try:
            await self.send_answer(answer)
        except UpstreamError as exc:
            log.warning("could not answer the server's request %r: %s", answer.id, exc.message)

    @abc.abstractmethod
    async def send_answer(self, answer: Message) -> None:
        """Send the proxy's answer to a server request; :class:`UpstreamError` if it cannot go."""

    async def close(self) -> None:
        if self.input is not None:
            self.input.cancel()
        if self.deadline is not None:
            self.deadline.cancel()
        if self.out is not None:
            await close_output(self.out, self.writer)
        self.era_route.close()
        await self.close_upstream()
        if self.era_route.channel is not None:
            await self.era_route.channel.close()
        for span in self.spans.values():
            tracing.finish(span)  # never answered
        self.spans.clear()
        await self.mount.sessions.close(self.session.id)
