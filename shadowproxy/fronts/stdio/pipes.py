"""The stdio front's own stdin and stdout, whatever they are: a client's pipes, a file, ``/dev/null``.

Pipes, sockets and terminals are read and written by protocol callbacks on the event loop's pipe transports. The
event loop cannot watch a regular file or ``/dev/null`` (uvloop aborts the process on one), so stdin that is one
is read a chunk at a time by a task and fed to the same :class:`LineReader`, and stdout that is one is written
with plain writes, which a file takes at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.flow import WriteFlow
from shadowproxy.core.jsonrpc import Message, decode
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.stdio import MAX_LINE

log = logging.getLogger("shadowproxy.fronts.stdio.front")

CLIENT = 0
CHUNK = 256 * 1024
# How long the last answers may take to reach the client once the proxy is done.
FLUSH_TIMEOUT = 10.0


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
        self.ended = False
        self.transport: asyncio.ReadTransport | None = None
        self.held = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def hold(self) -> None:
        """Stop reading the pipe: the front is behind, and what the client writes waits in the pipe, not here."""
        if self.transport is not None and not self.held:
            self.held = True
            self.transport.pause_reading()

    def release(self) -> None:
        if self.held:
            self.held = False
            assert self.transport is not None
            self.transport.resume_reading()

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
        self.end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.end()

    def end(self) -> None:
        """The end of stdin, once: a last line without a newline (a file written by hand) is a line too."""
        if self.ended:
            return
        self.ended = True
        if self.buffer:
            last, self.buffer = self.buffer, b""
            self.receive(CLIENT, self.messages([last]))
        self.closed()


class Output(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Writer(WriteFlow, asyncio.Protocol):
    """Our stdout, with flow control so a slow client cannot grow our memory without bound."""

    def __init__(self) -> None:
        self.done = asyncio.Event()

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()
        self.done.set()


class FileOutput:
    """Our stdout when it is a file: each write goes at once, so it never pushes back. A write that fails (a full
    disk) is logged once and what follows is dropped; the requests are still served."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.failed = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.failed:
            try:
                view = view[os.write(self.fd, view) :]
            except OSError as exc:
                log.error("cannot write to stdout: %s; the answers that follow are dropped", exc.strerror or exc)
                self.failed = True

    def close(self) -> None:
        """The fd stays open: the process's own stdout, closed when it exits."""


def watchable(fd: int) -> bool:
    """Whether the event loop can watch ``fd``: a pipe, a socket or a terminal, not a file or ``/dev/null``."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


async def open_output(writer: Writer) -> Output:
    """Our stdout, as a pipe transport when the loop can watch it, else written directly."""
    if watchable(sys.stdout.fileno()):
        transport, _ = await asyncio.get_running_loop().connect_write_pipe(lambda: writer, sys.stdout)
        return transport
    writer.done.set()
    return FileOutput(sys.stdout.fileno())


async def open_input(reader: LineReader, ready: Callable[[], Awaitable[None]]) -> asyncio.Task[None] | None:
    """Read our stdin into ``reader``: by the loop's pipe transport, or else by a task, the task returned."""
    if watchable(sys.stdin.fileno()):
        await asyncio.get_running_loop().connect_read_pipe(lambda: reader, sys.stdin)
        return None
    return spawn(read_file(sys.stdin.fileno(), reader, ready), name="stdin-file")


async def read_file(fd: int, reader: LineReader, ready: Callable[[], Awaitable[None]]) -> None:
    """A file on stdin, fed to ``reader`` a chunk at a time. A read from a file does not wait on anyone, so it is
    done in the loop; ``ready`` waits while the side the lines go to is full, as a pipe's reader would be held."""
    try:
        while data := os.read(fd, CHUNK):
            reader.data_received(data)
            await ready()
    except OSError as exc:
        log.error("cannot read stdin: %s", exc.strerror or exc)
    reader.end()


async def close_output(output: Output, writer: Writer) -> None:
    """Close stdout once what is written has reached the client (or after :data:`FLUSH_TIMEOUT`)."""
    output.close()
    try:
        async with asyncio.timeout(FLUSH_TIMEOUT):
            await writer.done.wait()
    except TimeoutError:
        log.warning("the client did not read the last answers within %ss", FLUSH_TIMEOUT)
