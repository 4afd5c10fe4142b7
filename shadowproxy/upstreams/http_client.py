"""A lean HTTP/1.1 client for the Streamable HTTP upstream leg: keep-alive pools, httptools, no per-request task.

aiohttp's client was 43 % of the proxy's samples on HTTP->HTTP (request and response objects, payload
writer, connector, stream readers: benchmarks/README.md). An MCP POST needs far less: one write of the
head and body, a response parsed in the connection's callbacks, its body handed to the task that asked.
Redirects 307/308 are followed as aiohttp did; the connection goes back to its pool when its response
was read to the end and released, and is closed otherwise (closing a 2026-07-28 answer stream is how a
client cancels).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections import deque
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

import httptools

from shadowproxy.core.http_head import header_block

REDIRECTS = frozenset({307, 308})
MAX_REDIRECTS = 5
HIGH_WATER = 1 << 18
"""Bytes of a response body buffered before the connection stops reading (an event stream read slowly)."""


class HttpClientError(ConnectionError):
    """The upstream could not be reached, broke the connection, or answered with something that is not HTTP."""


class ConnectFailed(HttpClientError):
    """No connection could be made: nothing of the request was sent (another replica may take it)."""


class Response:
    """One response: status and headers when they have arrived, the body as it arrives."""

    __slots__ = (
        "_chunks",
        "_connection",
        "_done",
        "_error",
        "_released",
        "_waiter",
        "_whole",
        "buffered",
        "headers",
        "status",
    )

    def __init__(self, connection: HttpConnection, status: int, headers: dict[str, str]) -> None:
        self._connection = connection
        self.status = status
        self.headers = headers
        """Header values by lower-case name (a repeated header keeps its last value)."""
        self._chunks: deque[bytes] = deque()
        self.buffered = 0
        self._done = False
        self._released = False
        self._whole = False
        self._error: HttpClientError | None = None
        self._waiter: asyncio.Future[None] | None = None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    async def read(self) -> bytes:
        """The whole body."""
        if not self._done:
            self._whole = True
            self._connection.resume_reading()
        while not self._done:
            await self._wait()
        body = b"".join(self._chunks)
        self._chunks.clear()
        return body

    async def readany(self) -> bytes:
        """What has arrived of the body since the last read, waiting for some; ``b""`` at its end."""
        while not self._chunks:
            if self._done:
                return b""
            await self._wait()
        chunk = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        if self.buffered >= HIGH_WATER and not self._done:
            self._connection.resume_reading()
        self.buffered = 0
        return chunk

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def release(self) -> None:
        """Done with it: the connection is reused when the body was read to its end, closed otherwise."""
        if self._released:
            return
        self._released = True
        if self._done and self._error is None:
            self._connection.reuse()
        else:
            self._connection.close()

    def close(self) -> None:
        """Close the connection under it (a client's cancellation)."""
        self._released = True
        self._connection.close()

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= HIGH_WATER and not self._whole:
            self._connection.pause_reading()
        self._wake()

    def _finish(self, error: HttpClientError | None = None) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        self._wake()
        if self._released and error is None:
            self._connection.reuse()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection: a request written whole, its response parsed as it arrives."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: dict[str, str] = {}
        self.response: Response | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.until_eof = False
        self.reading = True
        self.lost = False
        self.keep_alive = True
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def send(self, data: bytes) -> Response:
        assert self.transport is not None
        self.headers = {}
        self.response = None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            return await self.waiter
        except asyncio.CancelledError:
            self.close()
            raise
        finally:
            self.waiter = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpClientError(f"the upstream's answer is not HTTP/1.1: {exc}"))
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        headers = self.headers
        self.until_eof = (
            "content-length" not in headers and "transfer-encoding" not in headers and status not in (204, 304)
        )
        self.response = Response(self, status, headers)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.response)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        response = self.response
        if response is None:
            return
        self.keep_alive = self.parser.should_keep_alive()
        response._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pool.forget(self)
        if self.response is not None and self.until_eof:
            self.response._finish()
        self._fail(HttpClientError(f"the upstream closed the connection{f': {exc}' if exc else ''}"))

    def _fail(self, error: HttpClientError) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        elif self.response is not None:
            self.response._finish(error)

    def pause_reading(self) -> None:
        if self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.reading and self.transport is not None and not self.lost:
            self.reading = True
            self.transport.resume_reading()

    def reuse(self) -> None:
        self.response = None
        if self.keep_alive:
            self.pool.put(self)
        else:
            self.close()

    def close(self) -> None:
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle keep-alive connections to one origin, most recently used first."""

    def __init__(self, scheme: str, host: str, port: int, *, connect_timeout: float, idle_timeout: float) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl.create_default_context() if scheme == "https" else None
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.idle: list[HttpConnection] = []
        self.sweeping: asyncio.TimerHandle | None = None
        self.closed = False

    async def connection(self) -> HttpConnection:
        loop = asyncio.get_running_loop()
        while self.idle:
            connection = self.idle.pop()
            if not connection.lost and loop.time() - connection.idle_since < self.idle_timeout:
                return connection
            connection.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: HttpConnection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return connection

    def put(self, connection: HttpConnection) -> None:
        if self.closed or connection.lost:
            connection.close()
            return
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        self.idle.append(connection)
        if self.sweeping is None:
            self.sweeping = loop.call_later(self.idle_timeout, self.sweep)

    def forget(self, connection: HttpConnection) -> None:
        try:
            self.idle.remove(connection)
        except ValueError:
            pass

    def sweep(self) -> None:
        """Close what stayed idle too long, so a burst does not keep its sockets open for good."""
        self.sweeping = None
        now = asyncio.get_running_loop().time()
        stale = [connection for connection in self.idle if now - connection.idle_since >= self.idle_timeout]
        for connection in stale:
            connection.close()
        if self.idle:
            self.sweeping = asyncio.get_running_loop().call_later(self.idle_timeout, self.sweep)

    def close(self) -> None:
        self.closed = True
        if self.sweeping is not None:
            self.sweeping.cancel()
        for connection in list(self.idle):
            connection.close()


class HttpClient:
    """Requests to one upstream URL (and wherever it redirects), over pooled keep-alive connections."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0, idle_timeout: float = 30.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.pools: dict[tuple[str, str, int], Pool] = {}
        self.targets: dict[str, tuple[Pool, bytes]] = {}

    def _target(self, url: str) -> tuple[Pool, bytes]:
        """The pool for ``url``'s origin and the request line's start and Host header, built once per URL."""
        found = self.targets.get(url)
        if found is not None:
            return found
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpClientError(f"not an http(s) URL: {url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = (parts.scheme, parts.hostname, port)
        pool = self.pools.get(origin)
        if pool is None:
            pool = self.pools[origin] = Pool(
                *origin, connect_timeout=self.connect_timeout, idle_timeout=self.idle_timeout
            )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        head = f" {path} HTTP/1.1\r\nHost: {host}\r\n"
        if parts.username is not None:
            secret = f"{parts.username}:{parts.password or ''}".encode()
            head += f"Authorization: Basic {base64.b64encode(secret).decode('ascii')}\r\n"
        found = self.targets[url] = (pool, head.encode("utf-8"))
        return found

    async def request(self, method: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            pool, head = self._target(url)
            response = await (await pool.connection()).send(_encode(method, head, headers, body))
            location = response.header("location")
            if response.status not in REDIRECTS or not location:
                return response
            response.close()
            url = urljoin(url, location)
        raise HttpClientError(f"the upstream redirected more than {MAX_REDIRECTS} times")

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
        self.targets.clear()


def _encode(method: str, head: bytes, headers: Mapping[str, str], body: bytes) -> bytes:
    try:
        block = header_block(headers)
    except ValueError as exc:
        raise HttpClientError(str(exc)) from None
    length = f"Content-Length: {len(body)}\r\n\r\n" if body or method == "POST" else "\r\n"
    return b"".join((method.encode("ascii"), head, (block + length).encode("utf-8"), body))
