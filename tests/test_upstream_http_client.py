"""The upstream leg's HTTP/1.1 client against real servers on real sockets: an aiohttp application for what a
well-behaved server does, and raw asyncio servers for what a broken one does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.http_client import HIGH_WATER, HttpClient, HttpClientError

CHUNKS = 1024


class Served:
    """An aiohttp server whose handlers note the connection each request came on."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.connections: list[object] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    def note(self, request: web.Request, body: bytes) -> None:
        self.connections.append(request.transport)
        self.bodies.append(body)
        self.headers.append(dict(request.headers))

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    server = Served()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        server.note(request, body)
        return web.Response(body=body, content_type="application/json")

    async def moved(request: web.Request) -> web.Response:
        server.note(request, await request.read())
        raise web.HTTPTemporaryRedirect("/mcp")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (3 * HIGH_WATER), content_type="application/json")

    server.app.router.add_post("/mcp", echo)
    server.app.router.add_post("/old", moved)
    server.app.router.add_post("/big", big)
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


async def raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/mcp"


async def test_requests_in_turn_share_one_connection(served: Served) -> None:
    client = HttpClient(served.url)
    for n in range(20):
        response = await client.request("POST", {"Content-Type": "application/json"}, b'{"n": %d}' % n)
        assert response.status == 200 and await response.read() == b'{"n": %d}' % n
        response.release()
    assert len(served.bodies) == 20 and len({id(c) for c in served.connections}) == 1
    assert served.headers[0]["Host"] == served.url.split("/")[2]
    client.close()


async def test_requests_at_once_each_get_a_connection_and_give_it_back(served: Served) -> None:
    client = HttpClient(served.url)

    async def call(n: int) -> bytes:
        response = await client.request("POST", {}, b"%d" % n)
        body = await response.read()
        response.release()
        return body

    for _ in range(3):
        assert await asyncio.gather(*(call(n) for n in range(8))) == [b"%d" % n for n in range(8)]
    assert len({id(c) for c in served.connections}) <= 8
    assert sum(len(pool.idle) for pool in client.pools.values()) <= 8
    client.close()


async def test_a_307_is_followed_with_the_same_body(served: Served) -> None:
    client = HttpClient(served.url.replace("/mcp", "/old"))
    response = await client.request("POST", {}, b'{"moved": true}')
    assert response.status == 200 and await response.read() == b'{"moved": true}'
    assert served.bodies == [b'{"moved": true}', b'{"moved": true}']
    response.release()
    client.close()


async def test_a_large_body_read_whole_is_not_held_back(served: Served) -> None:
    client = HttpClient(served.url.replace("/mcp", "/big"))
    response = await client.request("POST", {}, b"{}")
    assert await response.read() == b"x" * (3 * HIGH_WATER)
    response.release()
    client.close()


async def test_an_event_stream_arrives_as_it_is_sent_and_a_slow_reader_stops_the_reading() -> None:
    went_on = asyncio.Event()
    sent = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"5\r\nfirst\r\n")
        await writer.drain()
        await went_on.wait()
        chunk = b"y" * 65536
        for _ in range(CHUNKS):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += 1
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    server, url = await raw_server(handle)
    client = HttpClient(url)
    response = await client.request("POST", {}, b"{}")
    assert response.header("Content-Type") == "text/event-stream"
    assert await response.readany() == b"first"
    went_on.set()
    await asyncio.sleep(0.5)
    # The server is held by the socket buffers once the client stops reading: not all 64 MiB are out.
    # What one read of the socket brings (256 KiB) may come on top of the high-water mark.
    assert sent < CHUNKS and response.buffered <= HIGH_WATER + 262144
    received = 0
    while chunk := await response.readany():
        received += len(chunk)
    assert received == CHUNKS * 65536 and sent == CHUNKS
    response.release()
    client.close()
    server.close()


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server, url = await raw_server(handle)
    client = HttpClient(url)
    for _ in range(3):
        response = await client.request("POST", {}, b"{}")
        assert await response.read() == b"ok"
        response.release()
        await asyncio.sleep(0.05)
    assert connections == 3
    client.close()
    server.close()


async def test_connection_close_and_a_body_ended_by_the_close() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"until": "eof"}')
        await writer.drain()
        writer.close()

    server, url = await raw_server(handle)
    client = HttpClient(url)
    response = await client.request("POST", {}, b"{}")
    assert await response.read() == b'{"until": "eof"}'
    response.release()
    assert not any(pool.idle for pool in client.pools.values())
    client.close()
    server.close()


@pytest.mark.parametrize("answer", [b"hello there\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])
async def test_what_is_not_http_or_ends_early_is_an_error(answer: bytes) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server, url = await raw_server(handle)
    client = HttpClient(url)
    with pytest.raises(HttpClientError):
        response = await client.request("POST", {}, b"{}")
        await response.read()
    client.close()
    server.close()


async def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.read(65536))
        writer.close()

    server, url = await raw_server(handle)
    client = HttpClient(url)
    for value in ("a\r\nX-Injected: 1", "a\rb", "a\nb"):
        with pytest.raises(HttpClientError, match="line break"):
            await client.request("POST", {"X-Value": value}, b"{}")
    await asyncio.sleep(0.1)
    assert got in ([], [b""])
    client.close()
    server.close()


async def test_a_cancelled_request_and_a_response_let_go_early_close_their_connection() -> None:
    ended: list[bytes] = []
    both = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        if b"X-Answer: part" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
            await writer.drain()
        ended.append(await reader.read())
        if len(ended) == 2:
            both.set()

    server, url = await raw_server(handle)
    client = HttpClient(url)
    waiting = spawn(client.request("POST", {}, b"{}"), name="unanswered")
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    response = await client.request("POST", {"X-Answer": "part"}, b"{}")
    assert await response.readany() == b"part"
    response.release()
    await asyncio.wait_for(both.wait(), 5)
    assert ended == [b"", b""] and not any(pool.idle for pool in client.pools.values())
    client.close()
    server.close()


async def test_nothing_listening_is_an_error_naming_the_address() -> None:
    server, url = await raw_server(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(HttpClientError, match=r"cannot connect to 127\.0\.0\.1"):
        await HttpClient(url).request("POST", {}, b"{}")
