"""The HTTP load client: N simulated clients, each one keep-alive connection and one MCP session.

Each connection initializes its own session (``initialize``, then
``notifications/initialized``), then runs a closed loop of echo
``tools/call`` requests, one in flight. The loop lives in protocol callbacks:
a finished response sends the next request from ``data_received``, so the client
costs no task switch per request and stays well above what it measures.
Responses may be ``application/json`` or an SSE stream (chunked), as
Streamable HTTP allows.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast
from urllib.parse import urlsplit

from benchmarks.recorder import INITIALIZED, Recorder, call_body, initialize_body, is_echo


class LoadError(Exception):
    """A target that could not be driven: refused, closed, or answered the handshake wrongly."""


def _sse_data(body: bytes) -> bytes:
    """The last ``data:`` payload of an SSE body (the JSON-RPC response ends the stream)."""
    payload = b""
    for line in body.split(b"\n"):
        if line.startswith(b"data:"):
            payload = line[5:].strip()
    return payload


class HttpConnection(asyncio.Protocol):
    """One simulated client on one connection."""

    def __init__(self, host: str, path: str, recorder: Recorder, extra: bytes = b"") -> None:
        self.prefix = b"POST %s HTTP/1.1\r\nHost: %s\r\n" % (path.encode(), host.encode())
        self.common = b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n" + extra
        self.recorder = recorder
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.head: bytes | None = None
        self.waiter: asyncio.Future[tuple[int, bytes, bytes]] | None = None
        self.looping = False
        self.running = False
        self.next_id = 1
        self.sent_at = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(LoadError(f"connection closed: {exc}"))
        if self.running:
            self.recorder.error(f"connection closed mid-run: {exc}")
        self.running = self.looping = False
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"%s%sContent-Length: %d\r\n\r\n%s" % (self.prefix, self.common, len(body), body))

    async def exchange(self, body: bytes) -> tuple[int, bytes, bytes]:
        """Send one request and wait for its whole response: (status, head, body)."""
        self.waiter = asyncio.get_running_loop().create_future()
        self.send(body)
        return await self.waiter

    async def initialize(self) -> None:
        status, head, body = await self.exchange(initialize_body(0))
        if status != 200:
            raise LoadError(f"initialize answered HTTP {status}: {body[:200]!r}")
        session = _header(head, b"mcp-session-id")
        reply = _sse_data(body) if b"text/event-stream" in head else body
        if b'"result"' not in reply:
            raise LoadError(f"initialize failed: {reply[:200]!r}")
        version = b"2025-11-25"
        if session is not None:
            self.common += b"Mcp-Session-Id: %s\r\n" % session
        self.common += b"MCP-Protocol-Version: %s\r\n" % version
        status, _, body = await self.exchange(INITIALIZED)
        if status not in (200, 202):
            raise LoadError(f"notifications/initialized answered HTTP {status}: {body[:200]!r}")

    def start(self) -> None:
        """Begin the closed loop of echo calls."""
        self.looping = self.running = True
        self._next()

    def stop(self) -> None:
        """Send no more requests; the one in flight still completes."""
        self.looping = False

    def _next(self) -> None:
        request_id = self.next_id
        self.next_id += 1
        self.sent_at = time.perf_counter_ns()
        self.send(call_body(request_id))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (response := self._take_response()) is not None:
            status, head, body = response
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(response)
                continue
            self._completed(status, head, body)

    def _completed(self, status: int, head: bytes, body: bytes) -> None:
        self.recorder.latencies.append(time.perf_counter_ns() - self.sent_at)
        if b"text/event-stream" in head:
            body = _sse_data(body)
        if status != 200 or not is_echo(body, self.next_id - 1):
            self.recorder.latencies.pop()
            self.recorder.error(f"HTTP {status}: {body[:200]!r}")
        if self.looping:
            self._next()
        else:
            self.running = False

    def _take_response(self) -> tuple[int, bytes, bytes] | None:
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return None
            self.head = self.buffer[:end]
            self.buffer = self.buffer[end + 4 :]
        head = self.head
        length = _header(head, b"content-length")
        if length is not None:
            size = int(length)
            if len(self.buffer) < size:
                return None
            body, self.buffer = self.buffer[:size], self.buffer[size:]
        elif b"chunked" in (_header(head, b"transfer-encoding") or b""):
            taken = _dechunk(self.buffer)
            if taken is None:
                return None
            body, used = taken
            self.buffer = self.buffer[used:]
        else:
            body = b""
        self.head = None
        return int(head[9:12]), head, body


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (given in lower case) in a response head."""
    at = head.lower().find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else None].strip()


def _dechunk(buffer: bytes) -> tuple[bytes, int] | None:
    """A complete chunked body and the bytes it used, or ``None`` while it is incomplete."""
    parts = []
    at = 0
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(buffer[at:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            return (b"".join(parts), start + 2) if len(buffer) >= start + 2 else None
        if len(buffer) < start + size + 2:
            return None
        parts.append(buffer[start : start + size])
        at = start + size + 2


class HttpLoad:
    """``concurrency`` simulated clients against one Streamable HTTP endpoint."""

    def __init__(self, url: str, concurrency: int, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise LoadError(f"the URL needs a host and a port: {url}")
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path or "/"
        self.concurrency = concurrency
        # Sent with every request (a bearer token, say), after the ones every MCP POST has.
        self.extra = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in (headers or {}).items())
        self.recorder = Recorder()
        self.connections: list[HttpConnection] = []

    async def start(self) -> None:
        """Connect and initialize every session, then start every closed loop."""
        loop = asyncio.get_running_loop()
        authority = f"{self.host}:{self.port}"
        for _ in range(self.concurrency):
            _, connection = await loop.create_connection(
                lambda: HttpConnection(authority, self.path, self.recorder, self.extra), self.host, self.port
            )
            self.connections.append(connection)
        async with asyncio.timeout(30):
            await asyncio.gather(*(connection.initialize() for connection in self.connections))
        for connection in self.connections:
            connection.start()

    async def stop(self) -> None:
        """Let in-flight requests finish (bounded), then close every connection."""
        for connection in self.connections:
            connection.stop()
        for _ in range(500):
            if not any(connection.running for connection in self.connections):
                break
            await asyncio.sleep(0.01)
        for connection in self.connections:
            if connection.transport is not None:
                connection.transport.close()
        async with asyncio.timeout(5):
            await asyncio.gather(*(connection.closed for connection in self.connections))
