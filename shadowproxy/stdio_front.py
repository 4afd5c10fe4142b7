"""The stdio client side: an MCP client launches ``shadowproxy stdio -- CMD`` in place of the server.

The whole process is one session and one task. Lines from our stdin and lines
from the child's stdout both arrive by protocol callbacks. A message the chain
has nothing to say on (it is empty, or declines the message) is passed on in
its callback when nothing is queued ahead of it; otherwise it goes into one
inbox, and the task judges each message with the chain and writes it to the
other side, in order. With
``--upstream URL`` (the stdio-to-HTTP bridge) each request in flight is read by
a task of its own, since the server may ask the client something before it
answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from shadowproxy import metrics
from shadowproxy.chain import C2S, S2C
from shadowproxy.errors import INTERNAL_ERROR, JsonRpcError, UpstreamError
from shadowproxy.http_wire import answer_for
from shadowproxy.inbox import Inbox
from shadowproxy.jsonrpc import ERROR, REQUEST, RESPONSE, Kind, Message, decode, error_response
from shadowproxy.mount import MODERN_VERSIONS, Mount, request_protocol_version
from shadowproxy.session import SessionRecord, new_session_id
from shadowproxy.sessions import LiveSession
from shadowproxy.tasks import spawn
from shadowproxy.upstreams.base import Channel
from shadowproxy.upstreams.stdio import MAX_LINE, ChildProcess, StdioUpstream

log = logging.getLogger(__name__)

CLIENT, SERVER, CLIENT_EOF, SERVER_EXIT = range(4)
# Echo benchmark, 16 requests in flight, messages per write (benchmarks.stdio_load, 2 cores): 2 122k req/s, 3 127k,
# 4 142-148k, 6 100-131k, 8 115-128k, 12 81k. Fewer per write cost more system calls; more make each side wait
# longer for the other's batch.
WRITE_BATCH = 4
Event = tuple[int, Any]


class LineReader(asyncio.Protocol):
    """Our stdin: newline-delimited JSON-RPC, handed on a read's worth at a time; bad lines are answered at once
    and never stop the session."""

    def __init__(
        self,
        receive: Callable[[int, Iterator[Message]], None],
        reject: Callable[[bytes | None, JsonRpcError], None],
        closed: Callable[[], None],
    ) -> None:
        self.receive = receive
        self.reject = reject
        self.closed = closed
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        lines = (self.buffer + data).split(b"\n") if self.buffer else data.split(b"\n")
        self.buffer = lines.pop()
        if len(self.buffer) > MAX_LINE:
            self.buffer = b""
            self.reject(None, JsonRpcError(-32600, f"message over {MAX_LINE} bytes"))
        self.receive(CLIENT, self.messages(lines))

    def messages(self, lines: list[bytes]) -> Iterator[Message]:
        """Each line decoded when it is taken, so what is taken first can be written on before the rest is decoded."""
        for line in lines:
            if not line or line.isspace():
                continue
            try:
                decoded = decode(line)
            except JsonRpcError as exc:
                self.reject(line, exc)
                continue
            if type(decoded) is list:
                yield from decoded
            else:
                yield decoded  # type: ignore[misc]

    def eof_received(self) -> bool:
        self.closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed()


class Writer(asyncio.Protocol):
    """Our stdout, with flow control so a slow client cannot grow our memory without bound."""

    def __init__(self) -> None:
        self.paused: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)
        self.paused = None


class StdioFront:
    def __init__(self, mount: Mount) -> None:
        self.mount = mount
        self.inbox: Inbox[Event] = Inbox()
        record = SessionRecord(id=new_session_id(), upstream=mount.name)
        self.session = LiveSession(record, mount)
        # The client's requests on their way to the server, and when each was sent (a perf_counter reading).
        self.inflight: dict[object, tuple[Message, float]] = {}
        self.child: ChildProcess | None = None
        self.channel: Channel | None = None
        self.listener: asyncio.Task[None] | None = None
        self.out: asyncio.WriteTransport | None = None
        self.writer = Writer()
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

    def reject(self, line: bytes | None, error: JsonRpcError) -> None:
        log.warning("client sent a bad message (%s): %.200r", error.message, line)
        self.write(error_response(None, error))
        self.flush()

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        self.out, _ = await loop.connect_write_pipe(lambda: self.writer, sys.stdout)  # type: ignore[assignment]
        reader = LineReader(self.receive, self.reject, lambda: self.inbox.put((CLIENT_EOF, None)))
        await loop.connect_read_pipe(lambda: reader, sys.stdin)
        upstream = self.mount.upstream
        if isinstance(upstream, StdioUpstream):
            self.child = await upstream.attach(lambda messages: self.receive(SERVER, messages))
            metrics.upstream_started(upstream)
            self.child.finished.add_done_callback(lambda _: self.inbox.put((SERVER_EXIT, None)))
        else:
            self.channel = await upstream.open(lambda message: self.inbox.put((SERVER, message)))
        self.mount.sessions.add(self.session)
        while True:
            if not self.inbox:
                self.flush()
                if self.writer.paused is not None:
                    await self.writer.paused
                if self.child is not None:
                    await self.child.drain()
            self.idle = not self.inbox
            kind, message = await self.inbox.next()
            self.idle = False
            if kind == CLIENT:
                await self.from_client(message)
            elif kind == SERVER:
                await self.from_server(message)
            elif kind == CLIENT_EOF:
                self.flush()
                return 0
            else:
                code = self.upstream_exited()
                self.flush()
                return code

    def upstream_exited(self) -> int:
        assert self.child is not None
        code = self.child.returncode or 0
        error = UpstreamError(f"upstream {self.mount.name!r} exited with code {code} before answering")
        for request_id in self.inflight:
            self.write(error_response(request_id, error))  # type: ignore[arg-type]
        log.error("upstream %s exited with code %s", self.mount.name, code)
        metrics.upstream_failed(self.mount.name)
        return code if code else 1

    def client_now(self, message: Message) -> bool:
        """A client message passed on unjudged, or ``False`` when the chain has to see it (in the task)."""
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
        verdict = await self.mount.judge(message, C2S, self.session, "stdio")
        self.mount.sessions.touch(self.session)
        if not verdict.is_forward:
            answer = answer_for(message, verdict)
            if answer is not None:
                self.write(answer)
            return
        if verdict.message is not None:
            message = verdict.message
        if self.child is not None:
            self.to_child_now(message)
        elif message.is_request:
            self.sent(message)
            spawn(self.bridge(message), name=f"bridge-{message.id}")
        else:
            assert self.channel is not None
            with contextlib.suppress(UpstreamError):
                await self.channel.send(message, self.bridge_headers(message))

    async def answer_server(self, answer: Message) -> None:
        """The proxy's answer to a server request the chain stopped; :class:`UpstreamError` if it cannot go."""
        if self.child is not None:
            self.queue_for_child(answer)
        else:
            assert self.channel is not None
            await self.channel.send(answer, self.bridge_headers(answer))

    def bridge_headers(self, message: Message) -> dict[str, str]:
        """What an HTTP client would have sent alongside this message."""
        version = request_protocol_version(message) or self.session.record.protocol_version
        headers = {"MCP-Protocol-Version": version} if version and message.method != "initialize" else {}
        if version in MODERN_VERSIONS and message.method:
            headers["Mcp-Method"] = message.method
            params = message.params if isinstance(message.params, dict) else {}
            name = params.get("name") or params.get("uri")
            if isinstance(name, str):
                headers["Mcp-Name"] = name
        return headers

    async def bridge(self, message: Message) -> None:
        """One request through an HTTP upstream; its answers join the inbox."""
        assert self.channel is not None
        exchange = None
        try:
            exchange = await self.channel.request(message, self.bridge_headers(message))
            while True:
                incoming = await exchange.next()
                self.inbox.put((SERVER, incoming))
                if incoming.is_reply and incoming.id == message.id:
                    break
        except JsonRpcError as exc:
            self.inbox.put((SERVER, error_response(message.id, exc)))
        finally:
            if exchange is not None:
                await exchange.close()

    async def listen(self) -> None:
        """The HTTP upstream's GET stream: server requests and notifications tied to no request."""
        assert self.channel is not None
        headers = self.bridge_headers(Message(Kind.NOTIFICATION, {}))
        try:
            source = await self.channel.listen(headers)
        except UpstreamError as exc:
            log.warning("no upstream GET stream: %s", exc.message)
            return
        if source is None:
            return
        try:
            while True:
                self.inbox.put((SERVER, await source.next()))
        except JsonRpcError as exc:
            log.info("the upstream GET stream ended: %s", exc.message)
        finally:
            await source.close(cancel=True)

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
        metrics.answered(None, self.mount.name, method, at)
        if method == "initialize" and kind is RESPONSE:
            result = message.result if isinstance(message.result, dict) else {}
            self.mount.sessions.activate(self.session, result.get("protocolVersion"))
            if self.channel is not None:
                self.listener = spawn(self.listen(), name="bridge-listen")
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
        if self.listener is not None:
            self.listener.cancel()
        if self.child is not None:
            await self.child.terminate()
        if self.channel is not None:
            await self.channel.close()
        await self.mount.sessions.close(self.session.id)
