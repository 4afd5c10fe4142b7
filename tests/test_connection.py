"""The client connection (shadowproxy/fronts/http/connection.py) on raw sockets: MCP POSTs it serves itself, everything
else handed to aiohttp on the same connection, answered as aiohttp answers it."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import orjson
import pytest
import yaml

from shadowproxy.core.sse import SseParser
from tests.support import FAST_PATH, ProxyProcess, sdk_server_command

from .security.helpers import INIT, PING

LIMIT = 30
# Tests of which path serves a request, rather than of how it is answered, mean nothing with the fast path off.
fast_path_only = pytest.mark.skipif(not FAST_PATH, reason="tests the fast path itself: SHADOWPROXY_FAST_PATH is off")


class RawClient:
    """One keep-alive connection, written and read byte by byte as the test says."""

    def __init__(self, proxy: ProxyProcess) -> None:
        self.host, port = proxy.base.removeprefix("http://").split(":")
        self.port = int(port)
        self.path = proxy.url.removeprefix(proxy.base)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.writer is not None
        self.writer.close()

    def post(self, message: object, session: str | None = None, extra: str = "", path: str | None = None) -> bytes:
        body = orjson.dumps(message)
        head = f"POST {path or self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        if session is not None:
            head += f"Mcp-Session-Id: {session}\r\n"
        return (head + extra + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def write(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), body (de-chunked)."""
        assert self.reader is not None
        async with asyncio.timeout(LIMIT):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding") == "chunked":
                body = b""
                while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
                    body += (await self.reader.readexactly(size + 2))[:-2]
                await self.reader.readexactly(2)
            else:
                body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def closed(self) -> bool:
        """Whether the proxy closed the connection (after anything it still had to say)."""
        assert self.reader is not None
        async with asyncio.timeout(LIMIT):
            return await self.reader.read() == b""


async def session_of(client: RawClient) -> str:
    await client.write(client.post(INIT))
    status, headers, body = await client.response()
    assert status == 200 and orjson.loads(body)["result"]["protocolVersion"]
    session = headers["mcp-session-id"]
    await client.write(client.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session))
    status, _, _ = await client.response()
    assert status == 202
    return session


@fast_path_only
async def test_a_keep_alive_connection_serves_posts_and_hands_the_rest_to_aiohttp(stdio_proxy: ProxyProcess) -> None:
    async with RawClient(stdio_proxy) as client:
        session = await session_of(client)
        await client.write(client.post(PING, session))
        status, headers, body = await client.response()
        assert status == 200 and orjson.loads(body) == {"jsonrpc": "2.0", "id": 2, "result": {}}
        assert headers["content-type"] == "application/json" and headers["x-request-id"] and headers["date"]
        # Served by the connection itself: aiohttp would have named itself in a Server header.
        assert "server" not in headers
        # A GET on the same connection: from here on aiohttp's handler has it, and serves POSTs too.
        await client.write(f"GET /healthz HTTP/1.1\r\nHost: {client.host}:{client.port}\r\n\r\n".encode())
        status, headers, body = await client.response()
        assert status == 200 and orjson.loads(body)["status"] == "ok" and "aiohttp" in headers["server"]
        await client.write(client.post({**PING, "id": 3}, session))
        status, headers, body = await client.response()
        assert status == 200 and orjson.loads(body)["id"] == 3 and "aiohttp" in headers["server"]


async def test_pipelined_posts_are_answered_in_order(stdio_proxy: ProxyProcess) -> None:
    async with RawClient(stdio_proxy) as client:
        session = await session_of(client)
        await client.write(b"".join(client.post({**PING, "id": n}, session) for n in (10, 11, 12)))
        for n in (10, 11, 12):
            status, _, body = await client.response()
            assert status == 200 and orjson.loads(body)["id"] == n


async def test_a_body_that_comes_in_pieces_is_waited_for(stdio_proxy: ProxyProcess) -> None:
    async with RawClient(stdio_proxy) as client:
        session = await session_of(client)
        request = client.post({**PING, "id": 7}, session)
        body_at = request.index(b"\r\n\r\n") + 4
        for piece in (request[:body_at], request[body_at : body_at + 5], request[body_at + 5 :]):
            await client.write(piece)
            await asyncio.sleep(0.05)
        status, _, body = await client.response()
        assert status == 200 and orjson.loads(body)["id"] == 7


async def test_a_big_body_still_coming_is_left_to_aiohttp(stdio_proxy: ProxyProcess) -> None:
    async with RawClient(stdio_proxy) as client:
        session = await session_of(client)
        text = "x" * 300_000
        params = {"name": "echo", "arguments": {"text": text}}
        call = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": params}
        request = client.post(call, session)
        await client.write(request[:100_000])
        await asyncio.sleep(0.05)
        await client.write(request[100_000:])
        status, headers, body = await client.response()
        assert status == 200 and "aiohttp" in headers["server"]
        assert orjson.loads(body)["result"]["content"][0]["text"] == text


async def test_a_streamed_answer_is_chunked_and_the_connection_goes_on(stdio_proxy: ProxyProcess) -> None:
    async with RawClient(stdio_proxy) as client:
        session = await session_of(client)
        call = {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "p"}},
        }
        await client.write(client.post(call, session))
        status, headers, body = await client.response()
        assert status == 200 and headers["content-type"].startswith("text/event-stream")
        assert headers["transfer-encoding"] == "chunked" and headers["x-request-id"]
        messages = [orjson.loads(event.data) for event in SseParser().feed(body) if event.data]
        assert [m["params"]["progress"] for m in messages if m.get("method") == "notifications/progress"] == [1, 2, 3]
        assert messages[-1]["id"] == 5 and messages[-1]["result"]["content"][0]["text"]
        await client.write(client.post({**PING, "id": 6}, session))
        status, _, body = await client.response()
        assert status == 200 and orjson.loads(body)["id"] == 6


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("Transfer-Encoding: chunked\r\n", 200),
        ("Connection: close\r\n", 200),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
        ("Content-Length: 3\r\n", 400),
        ("Host: elsewhere.example\r\n", 400),
        ("Bad Header: x\r\n", 400),
    ],
    ids=["chunked", "connection-close", "length-and-chunked", "two-lengths", "two-hosts", "bad-field"],
)
async def test_requests_the_connection_does_not_serve_get_aiohttp_s_answer(
    stdio_proxy: ProxyProcess, extra: str, expected: int
) -> None:
    async with RawClient(stdio_proxy) as client:
        session = await session_of(client)
        request = client.post({**PING, "id": 8}, session, extra=extra)
        if "chunked" in extra and expected == 200:
            head, _, body = request.partition(b"\r\n\r\n")
            head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(b"Content-Length"))
            request = head + b"\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        await client.write(request)
        status, _, body = await client.response()
        assert status == expected, body
        if expected == 200:
            assert orjson.loads(body)["id"] == 8
        if expected != 200 or "close" in extra:
            assert await client.closed()
        else:
            await client.write(client.post({**PING, "id": 9}, session))
            status, _, body = await client.response()
            assert status == 200 and orjson.loads(body)["id"] == 9


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /mcp?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /mcp HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /mcp HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\nContent-Length: 2\n\n{}",
    ],
    ids=["query", "http-1.0", "bare-newlines"],
)
async def test_unusual_heads_are_answered_by_aiohttp(stdio_proxy: ProxyProcess, request_bytes: bytes) -> None:
    async with RawClient(stdio_proxy) as client:
        await client.write(request_bytes)
        status, _, body = await client.response()
        # Served as aiohttp serves it: the endpoint's own JSON-RPC answer to "{}" (not a JSON-RPC message),
        # or aiohttp's 400 for a head it will not read.
        assert status == 400, body


async def test_an_idle_keep_alive_connection_is_closed(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "proxy.yaml"
    config.write_text(yaml.safe_dump({"limits": {"idle_timeout": 1}}))
    proxy = await start_proxy("--config", str(config), "--upstream", shlex.join(sdk_server_command()))
    async with RawClient(proxy) as client:
        await session_of(client)
        assert await client.closed()
