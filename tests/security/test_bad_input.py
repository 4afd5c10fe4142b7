"""Bad input the core tests (tests/test_http_errors.py) leave out: each gets its precise answer, the session
stays usable where the spec allows, and a client in another session never notices."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import orjson
from mcp import Client

from tests.support import REPO, ProxyProcess, until

from .helpers import INIT, PING, open_session, post

HOLDER = REPO / "tests" / "servers" / "holder.py"


async def in_flight(proxy: ProxyProcess) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/readyz") as response:
        return (await response.json())["in_flight"]  # type: ignore[no-any-return]


async def raw_http(proxy: ProxyProcess, head: bytes, body: bytes) -> bytes:
    """Send bytes on a fresh connection, close our side, and return all the proxy said."""
    host, port = proxy.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + b"\r\n\r\n" + body)
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_ids_methods_and_encodings(stdio_proxy: ProxyProcess) -> None:
    url = stdio_proxy.url
    async with Client(url, mode="legacy") as bystander:
        session = {"Mcp-Session-Id": await open_session(url)}
        status, payload, _ = await post(url, {"jsonrpc": "2.0", "id": 3, "method": "no/such/method"}, **session)
        assert status == 200 and payload["error"]["code"] == -32601 and payload["id"] == 3
        for request_id in (-(2**63), 2**64 - 1, "x" * 20_000, "", "ünï\u2603"):
            status, payload, _ = await post(url, {**PING, "id": request_id}, **session)
            assert status == 200 and payload == {"jsonrpc": "2.0", "id": request_id, "result": {}}
        status, payload, _ = await post(url, b'{"jsonrpc":"2.0","id":%d,"method":"ping"}' % 2**70, **session)
        assert status == 400 and payload["error"]["code"] == -32600
        status, payload, _ = await post(url, b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\xc3\x28"}}')
        assert status == 400 and payload["error"]["code"] == -32700
        # A response to a request the server never made is passed on, and harms nothing.
        status, _, _ = await post(url, {"jsonrpc": "2.0", "id": 4242, "result": {}}, **session)
        assert status == 202
        status, _, _ = await post(url, {"jsonrpc": "2.0", "id": 4243, "error": {"code": 1, "message": "?"}}, **session)
        assert status == 202
        status, payload, _ = await post(url, PING, **{**session, "Content-Type": "application/json; charset=utf-8"})
        assert status == 200 and payload["result"] == {}
        status, payload, _ = await post(url, PING, **{**session, "Content-Type": ""})
        assert status == 415 and payload["error"]["code"] == -32600
        async with aiohttp.ClientSession() as http:
            async with http.get(url, headers={**session, "Accept": "application/json"}) as response:
                assert response.status == 406
            async with http.get(url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": "nope"}) as response:
                assert response.status == 404
        assert (await bystander.call_tool("echo", {"text": "fine"})).content[0].text == "fine"  # type: ignore[union-attr]
        status, payload, _ = await post(url, PING, **session)
        assert status == 200 and payload["result"] == {}


async def test_duplicate_ids_in_flight_are_refused(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "received.jsonl"
    proxy = await start_proxy("--upstream", f"env RECORD={record} {sys.executable} {HOLDER}")
    url = proxy.url
    session = {"Mcp-Session-Id": await open_session(url)}
    hold = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "hold", "arguments": {}}}
    held = asyncio.ensure_future(post(url, hold, **session))  # noqa: TID251
    await until(lambda: record.exists() and '"hold"' in record.read_text(), "the held call to reach the server")
    status, payload, _ = await post(url, {**hold, "params": {"name": "echo", "arguments": {"text": "b"}}}, **session)
    assert status == 400 and payload["error"]["code"] == -32600 and "already in flight" in payload["error"]["message"]
    assert record.read_text().count('"id":5') == 1, "the duplicate never reaches the server"
    status, _, _ = await post(url, {"jsonrpc": "2.0", "method": "notifications/release"}, **session)
    assert status == 202
    status, payload, _ = await held
    assert status == 200 and payload["result"]["content"][0]["text"] == "released"
    # With the first one answered, the id is free again.
    status, payload, _ = await post(url, {**hold, "params": {"name": "echo", "arguments": {"text": "c"}}}, **session)
    assert status == 200 and payload["result"]["content"][0]["text"] == "c"


async def test_bodies_that_end_early_or_lie_about_their_size(stdio_proxy: ProxyProcess) -> None:
    url = stdio_proxy.url
    path = url.split(stdio_proxy.base)[1].encode()
    session = await open_session(url)
    host = stdio_proxy.base.removeprefix("http://").encode()
    head = b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
    head += b"Accept: application/json, text/event-stream\r\nMcp-Session-Id: " + session.encode()
    # Content-Length promises more than comes: the proxy sees the body end early.
    answer = await raw_http(stdio_proxy, head + b"\r\nContent-Length: 200", b'{"jsonrpc":"2.0","id":1,')
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    # A chunked body that stops mid-chunk.
    answer = await raw_http(stdio_proxy, head + b"\r\nTransfer-Encoding: chunked", b'40\r\n{"jsonrpc":')
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    # A chunked body bigger than max_body_size is refused without being read whole.
    chunk = b"x" * 65536
    big = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 80 + b"0\r\n\r\n"
    answer = await raw_http(stdio_proxy, head + b"\r\nTransfer-Encoding: chunked", big)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    async def idle() -> bool:
        return await in_flight(stdio_proxy) == 0

    await until(idle, "nothing in flight")
    status, payload, _ = await post(url, PING, **{"Mcp-Session-Id": session})
    assert status == 200 and payload["result"] == {}


async def test_a_failed_initialize_leaves_no_session(stdio_proxy: ProxyProcess) -> None:
    status, payload, headers = await post(stdio_proxy.url, {**INIT, "params": {"protocolVersion": 7}})
    assert status == 200 and payload["error"]["code"] == -32602
    async with aiohttp.ClientSession() as http, http.get(f"{stdio_proxy.base}/readyz") as response:
        assert (await response.json())["sessions"] == 0
    if "Mcp-Session-Id" in headers:
        status, _, _ = await post(stdio_proxy.url, PING, **{"Mcp-Session-Id": headers["Mcp-Session-Id"]})
        assert status == 404
    status, payload, _ = await post(stdio_proxy.url, orjson.dumps([INIT, PING]))
    assert status == 400 and payload["error"]["code"] == -32600


async def test_a_failed_initialize_gets_no_session_id(stdio_proxy: ProxyProcess) -> None:
    _, payload, headers = await post(stdio_proxy.url, {**INIT, "params": {"protocolVersion": 7}})
    assert "error" in payload
    assert "Mcp-Session-Id" not in headers


async def test_a_client_that_expects_100_continue_gets_it_before_sending_its_body(stdio_proxy: ProxyProcess) -> None:
    _, path = stdio_proxy.url.split("//", 1)[1].split("/", 1)
    host, port = stdio_proxy.base.removeprefix("http://").split(":")
    body = orjson.dumps(INIT)
    head = f"POST /{path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    head += "Accept: application/json, text/event-stream\r\nExpect: 100-continue\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        # The body is held back until the proxy says to go on, as such a client does.
        async with asyncio.timeout(30):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100"), interim
        writer.write(body)
        async with asyncio.timeout(30):
            final = await reader.readuntil(b"\r\n\r\n")
        assert final.startswith(b"HTTP/1.1 200") and b"Mcp-Session-Id" in final, final
    finally:
        writer.close()
