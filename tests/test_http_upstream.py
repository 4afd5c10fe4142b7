"""What reaches an HTTP upstream, seen by an upstream written for the test: headers, session ids, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from shadowproxy.upstreams.health import PING_ID
from tests.support import ProxyProcess

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
UPSTREAM_SESSION = "upstream-secret-session"


class Recorder:
    """A Streamable HTTP server that answers from a script and keeps every request it saw, but the proxy's health
    pings (which come when they come, so a test's last request would not always be the last seen)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], Any]] = []
        self.forget = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read()) if request.method == "POST" else None
        if isinstance(body, dict) and body.get("id") == PING_ID:
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": {}})
        self.seen.append((request.method, dict(request.headers), body))
        if request.method == "GET" and request.headers.get("Last-Event-ID") == "e1":
            return await self.resume(request)
        if request.method != "POST":
            return web.Response(status=405)
        if body.get("method") == "initialize":
            result = {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "recorder"}}
            reply = {"jsonrpc": "2.0", "id": body["id"], "result": result}
            return web.json_response(reply, headers={"Mcp-Session-Id": UPSTREAM_SESSION})
        if "id" not in body:
            return web.Response(status=202)
        if self.forget and request.headers.get("Mcp-Session-Id"):
            return web.Response(status=404)
        if body.get("params", {}).get("name") == "pause":
            return await self.pause(request)
        name = request.headers.get("Mcp-Name")
        if name is not None and name != body.get("params", {}).get("name"):
            error = {"code": -32020, "message": "header mismatch"}
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": error}, status=400)
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": {"ok": True}})

    async def pause(self, request: web.Request) -> web.StreamResponse:
        """Answer later: prime the stream, hint a retry, and close it (2025-11-25 polling)."""
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        await stream.write(b"id: e1\nretry: 50\ndata: \n\n")
        await stream.write_eof()
        return stream

    async def resume(self, request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        reply = {"jsonrpc": "2.0", "id": 9, "result": {"resumed": True}}
        await stream.write(b"id: e2\ndata: " + orjson.dumps(reply) + b"\n\n")
        await stream.write_eof()
        return stream


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    server = Recorder()
    app = web.Application()
    app.router.add_route("*", "/mcp", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield server, f"http://127.0.0.1:{port}/mcp"
    await runner.cleanup()


async def call(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as client, client.post(url, json=body, headers=headers) as response:
        return response.status, await response.json(), response.headers


async def test_2026_headers_pass_unchanged_and_errors_arrive_intact(start_proxy, recorder) -> None:  # type: ignore[no-untyped-def]
    server, url = recorder
    proxy: ProxyProcess = await start_proxy("--upstream", url)
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "add", "_meta": meta}}
    headers = {
        **HEADERS,
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "add",
        "Mcp-Param-Region": "eu-west",
    }
    status, reply, _ = await call(proxy.url, body, headers)
    assert status == 200 and reply["result"] == {"ok": True}
    _, seen, forwarded = server.seen[-1]
    assert forwarded == body
    for name in ("MCP-Protocol-Version", "Mcp-Method", "Mcp-Name", "Mcp-Param-Region"):
        assert seen[name] == headers[name]
    assert "Mcp-Session-Id" not in seen

    status, reply, _ = await call(proxy.url, body, {**headers, "Mcp-Name": "subtract"})
    assert status == 400
    assert reply["error"] == {"code": -32020, "message": "header mismatch"}


async def test_upstream_session_id_stays_inside(start_proxy, recorder) -> None:  # type: ignore[no-untyped-def]
    server, url = recorder
    proxy: ProxyProcess = await start_proxy("--upstream", url)
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}
    status, reply, response_headers = await call(
        proxy.url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, HEADERS
    )
    ours = response_headers["Mcp-Session-Id"]
    assert status == 200 and ours != UPSTREAM_SESSION and len(ours) >= 22
    assert UPSTREAM_SESSION not in str(reply)
    session_headers = {**HEADERS, "Mcp-Session-Id": ours, "MCP-Protocol-Version": "2025-11-25"}
    status, reply, _ = await call(proxy.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session_headers)
    assert status == 200 and reply["result"] == {"ok": True}
    assert server.seen[-1][1]["Mcp-Session-Id"] == UPSTREAM_SESSION

    # The upstream restarts and forgets the session: the client is told 404, so it initializes again.
    server.forget = True
    status, reply, _ = await call(proxy.url, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, session_headers)
    assert status == 404 and reply["id"] == 3
    status, _, _ = await call(proxy.url, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, session_headers)
    assert status == 404


async def test_a_paused_stream_resumes_at_the_upstream(start_proxy, recorder) -> None:  # type: ignore[no-untyped-def]
    server, url = recorder
    proxy: ProxyProcess = await start_proxy("--upstream", url)
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}
    _, _, response_headers = await call(
        proxy.url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, HEADERS
    )
    session = {**HEADERS, "Mcp-Session-Id": response_headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-11-25"}
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "pause", "arguments": {}}}
    async with aiohttp.ClientSession() as client:
        async with client.post(proxy.url, json=body, headers=session) as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            paused = await response.read()
        assert b"id: e1" in paused and b"retry: 50" in paused
        resume = {**session, "Accept": "text/event-stream", "Last-Event-ID": "e1"}
        async with client.get(proxy.url, headers=resume) as response:
            resumed = await response.read()
    assert b"id: e2" in resumed and b'"resumed":true' in resumed
    assert server.seen[-1][0] == "GET" and server.seen[-1][1]["Last-Event-ID"] == "e1"
