"""The stdio client side: an MCP client launches ``shadowproxy stdio -- CMD`` in place of the server.

The whole process is one session and one task. Lines from our stdin and lines
from the child's stdout both arrive by protocol callbacks. A message the chain
has nothing to say on (it is empty, or declines the message) is passed on in
its callback when nothing is queued ahead of it; otherwise it goes into one
inbox, and the task judges each message with the chain and writes it to the
other side, in order. With
``--upstream URL`` (the stdio-to-HTTP bridge) each request in flight is read by
a task of its own (:mod:`~shadowproxy.fronts.stdio.relay`), since the server may ask
the client something before it answers.

A client speaks one era and runs one server process, the child; a handshake-era client's 2026-07-28 request is
served by the upstream's stateless process, started then (see :class:`~shadowproxy.fronts.stdio.relay.Eras`). Stdin and
stdout may be pipes or files (:mod:`~shadowproxy.fronts.stdio.pipes`). When stdin ends, the requests already forwarded
are still answered, within the request timeout; then the proxy exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from shadowproxy.core import counters
from shadowproxy.core.chain import C2S, S2C
from shadowproxy.core.errors import INTERNAL_ERROR, REQUEST_TIMEOUT, JsonRpcError, UpstreamError
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import ERROR, REQUEST, RESPONSE, Kind, Message, error_response
from shadowproxy.core.record import SessionRecord, new_session_id
from shadowproxy.core.tasks import spawn
from shadowproxy.fronts.client_headers import ToolHeaders, client_headers
from shadowproxy.fronts.http.wire import answer_for
from shadowproxy.fronts.stdio.pipes import CLIENT, LineReader, Output, Writer, close_output, open_input, open_output
from shadowproxy.fronts.stdio.relay import MODERN, Eras, listen, relay
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.upstreams.base import Channel
from shadowproxy.upstreams.stdio import ChildProcess, StdioUpstream, count_start

__all__ = ["CLIENT", "SERVER", "LineReader", "StdioFront"]

log = logging.getLogger(__name__)

SERVER, CLIENT_EOF, SERVER_EXIT, STOP, TIMED_OUT = range(CLIENT + 1, CLIENT + 6)
# Echo benchmark, 16 requests in flight, messages per write (benchmarks.stdio_load, 2 cores): 2 122k req/s, 3 127k,
# 4 142-148k, 6 100-131k, 8 115-128k, 12 81k. Fewer per write cost more system calls; more make each side wait
# longer for the other's batch.
WRITE_BATCH = 4
# Messages waiting for the task beyond which the client's pipe is not read until they are taken: memory stays
# bounded when a client writes faster than the server (or the chain) takes its requests.
INBOX_HIGH = 128
Event = tuple[int, Any]


class StdioFront:
    def __init__(self, mount: Mount, *, request_timeout: float | None = None) -> None:
        self.mount = mount
        # How long the answers to what was forwarded may take once stdin has ended; ``None``: as long as they take.
        self.request_timeout = request_timeout
        self.inbox: Inbox[Event] = Inbox()
        record = SessionRecord(id=new_session_id(), upstream=mount.name)
        self.session = LiveSession(record, mount)
        # The client's requests on their way to the server, and when each was sent (a perf_counter reading).
        self.inflight: dict[object, tuple[Message, float]] = {}
        self.child: ChildProcess | None = None
        self.channel: Channel | None = None
        self.listener: asyncio.Task[None] | None = None
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
        self.eras = Eras()
        # The Mcp-Param-* maps of the tools this client listed, for an HTTP upstream.
        self.tools = ToolHeaders()
        self.to_client: list[bytes] = []
        self.to_child: list[bytes] = []
        # True while the task waits for the inbox with nothing queued: messages may then be handled as they arrive.
        self.idle = False
        # Messages (and errors among them) handled in the pipe callbacks, counted on the session once per write.
        self.untouched = 0
        self.untouched_errors = 0

    def write(self, message: Message) -> None:
        """Queue a line for the client; :meth:`flush` writes every queued line at once."""
        self.to_client.append(message.to_bytes())

    def flush(self) -> None:
        """One write per pipe for all that is queued: the task writes what it judged in one go."""
        if self.to_child:
            lines, self.to_child = self.to_child, []
            if self.child is not None and self.child.alive:
                self.child.write(b"\n".join(lines))
        if self.to_client:
            lines, self.to_client = self.to_client, []
            assert self.out is not None
            self.out.write(b"\n".join(lines) + b"\n")
        # After the writes: the other side is already at work while the session is updated.
        if self.untouched:
            self.mount.sessions.touch(self.session, messages=self.untouched, errors=self.untouched_errors)
            self.untouched = self.untouched_errors = 0

    def receive(self, source: int, messages: Iterator[Message]) -> None:
        """Where both pipes' messages arrive, a read's worth at a time. A message the chain passes unjudged cannot
        suspend, so it is handled and written here, in the pipe's callback, while nothing is queued ahead of it and
        neither pipe is full; from the first one that cannot be, the rest go to the task, in order."""
        child = self.child
        if self.idle and not self.inbox and child is not None:
            now = self.client_now if source == CLIENT else self.server_now
            writer = self.writer
            handled = 0
            for message in messages:
                if writer.paused is not None or child.paused is not None or not now(message):
                    self.inbox.put((source, message))
                    break
                # Written in batches of WRITE_BATCH, and at the end of the read: the other side starts on a batch
                # while the rest of the read is decoded.
                handled += 1
                if handled == WRITE_BATCH:
                    self.flush()
                    handled = 0
        for message in messages:
            self.inbox.put((source, message))
        self.flush()
        if source == CLIENT and len(self.inbox) > INBOX_HIGH:
            self.reader.hold()

    def reject(self, line: bytes | None, error: JsonRpcError) -> None:
        log.warning("client sent a bad message (%s): %.200r", error.message, line)
        self.write(error_response(None, error))
        self.flush()

    async def serve(self) -> int:
        self.out = await open_output(self.writer)
        self.input = await open_input(self.reader, self.ready)
        upstream = self.mount.upstream
        if isinstance(upstream, StdioUpstream):
            self.child = await upstream.attach(lambda messages: self.receive(SERVER, messages))
            count_start(upstream)
            self.child.finished.add_done_callback(lambda _: self.inbox.put((SERVER_EXIT, None)))
        else:
            self.channel = await upstream.open(lambda message: self.inbox.put((SERVER, message)))
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
                if self.child is not None:
                    await self.child.drain()
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
                code = self.upstream_exited()
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
        if self.child is not None:
            await self.child.drain()
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

    def upstream_exited(self) -> int:
        assert self.child is not None
        code = self.child.returncode or 0
        error = UpstreamError(f"upstream {self.mount.name!r} exited with code {code} before answering")
        for request_id in self.inflight:
            self.write(error_response(request_id, error))  # type: ignore[arg-type]
        log.error("upstream %s exited with code %s", self.mount.name, code)
        counters.upstream_failed(self.mount.name)
        return code if code else 1

    def client_now(self, message: Message) -> bool:
        """A client message passed on unjudged, or ``False`` when the chain has to see it (in the task)."""
        eras = self.eras
        if eras.era is not MODERN and eras.stateless(message):
            return False
        if message.data.get("method") == "initialize":
            self.note_initialize(message)
        if not self.mount.passes(message, C2S, self.session, "stdio"):
            return False
        self.untouched += 1
        self.to_child_now(message)
        return True

    def note_initialize(self, message: Message) -> None:
        if message.method == "initialize":
            params = message.params or {}
            record = self.session.record
            record.client_info = params.get("clientInfo")
            record.client_capabilities = params.get("capabilities")
            record.protocol_version = params.get("protocolVersion")
            record.init_request = message.to_bytes().decode()

    def to_child_now(self, message: Message) -> None:
        """Queue a client message for the child; a request the child cannot take is answered with the error at once."""
        try:
            self.queue_for_child(message)
        except UpstreamError as exc:
            if message.kind is REQUEST:
                self.write(error_response(message.data["id"], exc))
            return
        if message.kind is REQUEST:
            self.sent(message)

    def queue_for_child(self, message: Message) -> None:
        """Queue a line for the child (written by :meth:`flush`), or raise :class:`UpstreamError` if it is gone."""
        assert self.child is not None
        if not self.child.alive:
            raise UpstreamError(f"upstream {self.mount.name!r} is not running")
        self.to_child.append(message.to_bytes())

    async def from_client(self, message: Message) -> None:
        self.note_initialize(message)
        stateless = self.child is not None and self.eras.era is not MODERN and self.eras.stateless(message)
        verdict = await self.mount.judge(message, C2S, self.session, "stdio")
        self.mount.sessions.touch(self.session)
        if not verdict.is_forward:
            answer = answer_for(message, verdict)
            if answer is not None:
                self.write(answer)
            return
        if verdict.message is not None:
            message = verdict.message
        if stateless:
            await self.to_stateless(message)
        elif self.child is not None:
            self.to_child_now(message)
        elif message.is_request:
            assert self.channel is not None
            self.sent(message)
            headers = self.bridge_headers(message)
            reading = relay(self.channel, message, headers, self.from_upstream, tools=self.tools)
            spawn(reading, name=f"bridge-{message.id}")
        else:
            assert self.channel is not None
            with contextlib.suppress(UpstreamError):
                await self.channel.send(message, self.bridge_headers(message))

    async def to_stateless(self, message: Message) -> None:
        """A request to the upstream's stateless process (started for the first), read by a task of its own; the
        client's answer to what that process asked, or a cancellation of a request it serves, sent at once."""
        if message.kind is REQUEST:
            self.sent(message)
            self.eras.requests.add(message.data["id"])
            spawn(self.stateless(message), name=f"stateless-{message.id}")
            return
        self.eras.asked.discard(message.data.get("id"))
        with contextlib.suppress(UpstreamError):
            await (await self.mount.stateless_channel(self.session)).send(message, {})

    async def stateless(self, request: Message) -> None:
        """One request through the stateless process; its answers join the inbox."""
        try:
            channel = await self.mount.stateless_channel(self.session)
            await relay(channel, request, {}, self.from_upstream, self.eras.asked)
        except UpstreamError as exc:
            self.from_upstream(error_response(request.id, exc))
        finally:
            self.eras.requests.discard(request.data["id"])

    def from_upstream(self, message: Message) -> None:
        """What a task read from the upstream: judged and written by the front's task, in order."""
        self.inbox.put((SERVER, message))

    async def answer_server(self, answer: Message) -> None:
        """The proxy's answer to a server request the chain stopped; :class:`UpstreamError` if it cannot go."""
        if answer.data.get("id") in self.eras.asked:
            await self.to_stateless(answer)
        elif self.child is not None:
            self.queue_for_child(answer)
        else:
            assert self.channel is not None
            await self.channel.send(answer, self.bridge_headers(answer))

    def bridge_headers(self, message: Message) -> dict[str, str]:
        """What an HTTP client of this session would have sent alongside this message."""
        return client_headers(message, self.session.record.protocol_version, self.tools)

    def server_now(self, message: Message) -> bool:
        """A server message passed on unjudged, or ``False`` when the chain has to see it (in the task)."""
        kind = message.kind
        sent = self.inflight.get(message.data["id"]) if kind is RESPONSE or kind is ERROR else None
        if not self.mount.passes(message, S2C, self.session, "stdio", sent[0] if sent is not None else None):
            return False
        self.answered(message)
        self.untouched += 1
        if kind is ERROR:
            self.untouched_errors += 1
        self.write(message)
        return True

    def sent(self, request: Message) -> None:
        """A request of the client's is on its way to the server: in flight until :meth:`answered`."""
        self.inflight[request.data["id"]] = (request, time.perf_counter())

    def answered(self, message: Message) -> Message | None:
        """The request ``message`` answers, if it is a reply to one of ours: no longer in flight."""
        kind = message.kind
        sent = self.inflight.pop(message.data["id"], None) if kind is RESPONSE or kind is ERROR else None
        if sent is None:
            return None
        request, at = sent
        method = request.data["method"]
        counters.answered(None, self.mount.name, method, at)
        if method == "initialize" and kind is RESPONSE:
            result = message.result if isinstance(message.result, dict) else {}
            self.mount.sessions.activate(self.session, result.get("protocolVersion"))
            if self.channel is not None:
                headers = self.bridge_headers(Message(Kind.NOTIFICATION, {}))
                self.listener = spawn(listen(self.channel, headers, self.from_upstream), name="bridge-listen")
        return request

    async def from_server(self, message: Message) -> None:
        request = self.answered(message)
        verdict = await self.mount.judge(message, S2C, self.session, "stdio", request)
        self.mount.sessions.touch(self.session, errors=message.error is not None)
        if verdict.is_forward:
            self.write(verdict.message or message)
        elif message.is_reply:
            self.write(error_response(message.id, verdict.error or JsonRpcError(INTERNAL_ERROR, "blocked")))
        else:
            answer = answer_for(message, verdict)
            if answer is not None:
                try:
                    await self.answer_server(answer)
                except UpstreamError as exc:
                    log.warning("could not answer the server's %s: %s", message.method, exc.message)

    async def close(self) -> None:
        for task in (self.input, self.listener):
            if task is not None:
                task.cancel()
        if self.deadline is not None:
            self.deadline.cancel()
        if self.out is not None:
            await close_output(self.out, self.writer)
        if self.child is not None:
            await self.child.terminate()
        if self.channel is not None:
            await self.channel.close()
        await self.mount.sessions.close(self.session.id)
