"""The legacy SSE and WebSocket fronts give an HTTP upstream what the Streamable HTTP front gives it (issue 18).

Item 10: an HTTP upstream's error answer with ``"id": null`` reaches the client tied to the request it answers.
Item 11: a 2026-07-28 request carries the headers a 2026-07-28 HTTP client would send (``MCP-Protocol-Version``,
``Mcp-Method``, ``Mcp-Name``, ``Mcp-Param-*``), derived from the message, so the upstream serves it in that era.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from mcp import Client
from mcp.client.session import _make_modern_stamp
from mcp.client.sse import sse_client
from mcp.shared.inbound import mcp_param_headers, x_mcp_header_map

from shadowproxy.core.jsonrpc import decode
from shadowproxy.core.sse import SseParser
from shadowproxy.fronts.client_headers import ToolHeaders, client_headers
from tests.streams.conftest import ServerProcess
from tests.streams.ws_transport import websocket_client
from tests.support import REPO, HttpServerProcess, ProxyProcess, free_port, sdk_server_command
from tests.test_proxy_http import exercise_client, text_of

FRONTS = ["sse", "websocket"]
HEADERS_SERVER = REPO / "tests" / "streams" / "headers_server.py"
MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
NULL_ID_ERROR = {"code": -32600, "message": "the server could not read the request's id"}

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


@asynccontextmanager
async def raw_front(front: str, base: str) -> AsyncIterator[tuple[Send, Receive]]:
    """One client session on ``front``, sending raw messages and reading whatever the proxy sends back."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
        if front == "websocket":
            async with client.ws_connect(base.replace("http://", "ws://") + "/ws", protocols=("mcp",)) as ws:

                async def send_frame(message: dict[str, Any]) -> None:
                    await ws.send_str(orjson.dumps(message).decode())

                async def receive_frame() -> dict[str, Any]:
                    return orjson.loads((await ws.receive(timeout=30)).data)  # type: ignore[no-any-return]

                yield send_frame, receive_frame
            return
        response = await client.get(f"{base}/sse", headers={"Accept": "text/event-stream"})
        parser = SseParser()
        queued: list[Any] = []

        async def receive_event() -> dict[str, Any]:
            while not queued:
                queued.extend(e for e in parser.feed(await response.content.readany()) if e.event == "message")
            return orjson.loads(queued.pop(0).data)  # type: ignore[no-any-return]

        endpoint = ""
        while not endpoint:
            endpoint = next((e.data.decode() for e in parser.feed(await response.content.readany())), "")

        async def post(message: dict[str, Any]) -> None:
            async with client.post(f"{base}{endpoint}", json=message) as answer:
                assert answer.status == 202, await answer.text()

        try:
            yield post, receive_event
        finally:
            response.close()


class ScriptedServer:
    """A Streamable HTTP server answering from a script by tool name; it keeps the notifications it is sent.

    ``plain`` and ``streamed`` are answered with an error whose id is null (a JSON body, an event), ``stray``
    with a JSON body that answers some other id; ``hang`` is never answered: its event stream carries
    comments until the proxy lets go of it; ``quick`` succeeds.
    """

    def __init__(self) -> None:
        self.notifications: list[str] = []
        self.hanging = asyncio.Event()
        self.let_go = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405)
        body = orjson.loads(await request.read())
        if body.get("method") == "initialize":
            result = {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "scripted"}}
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})
        if body.get("method") == "server/discover":
            result = {"supportedVersions": ["2025-06-18", "2026-07-28"], "capabilities": {}, "serverInfo": {}}
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})
        if "id" not in body:
            self.notifications.append(body["method"])
            return web.Response(status=202)
        name = body.get("params", {}).get("name")
        if name in ("quick", "stray"):
            answered = body["id"] if name == "quick" else 999
            return web.json_response({"jsonrpc": "2.0", "id": answered, "result": {"content": []}})
        error = {"jsonrpc": "2.0", "id": None, "error": NULL_ID_ERROR}
        if name == "plain":
            return web.json_response(error, status=400)
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        if name == "streamed":
            await stream.write(b"event: message\ndata: " + orjson.dumps(error) + b"\n\n")
            await stream.write_eof()
            return stream
        self.hanging.set()
        try:
            while True:
                await stream.write(b": still working\n\n")
                await asyncio.sleep(0.05)
        except ConnectionError:
            self.let_go.set()
        return stream


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedServer, str]]:
    server = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/mcp", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}/mcp"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("front", FRONTS)
async def test_an_id_null_error_answers_its_request(start_proxy, scripted, front: str) -> None:  # type: ignore[no-untyped-def]
    """Item 10: the error, as a JSON body or an event, comes back with the id of the request it answers."""
    proxy: ProxyProcess = await start_proxy("--upstream", scripted[1])
    async with raw_front(front, proxy.base) as (send, receive):
        await send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT})
        assert (await receive())["result"]["serverInfo"]["name"] == "scripted"
        await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        for request_id, name in ((7, "plain"), ("eight", "streamed")):
            await send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name}})
            reply = await receive()
            assert reply == {"jsonrpc": "2.0", "id": request_id, "error": NULL_ID_ERROR}
        # A JSON answer that is not this request's is no answer: the client is told so, its request not left open.
        await send({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "stray"}})
        reply = await receive()
        while reply.get("id") != 9:
            reply = await receive()
        assert "without the response to this request" in reply["error"]["message"]


async def test_an_id_null_error_answers_its_post_on_the_streamable_http_front(start_proxy, scripted) -> None:  # type: ignore[no-untyped-def]
    """The same upstream through the Streamable HTTP front: the upstream's 400 and the request's id."""
    proxy: ProxyProcess = await start_proxy("--upstream", scripted[1])
    headers = {"Accept": "application/json, text/event-stream"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}
        async with client.post(proxy.url, json=init, headers=headers) as answer:
            headers["Mcp-Session-Id"] = answer.headers["Mcp-Session-Id"]
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "plain"}}
        async with client.post(proxy.url, json=call, headers=headers) as answer:
            assert answer.status == 400
            assert await answer.json() == {"jsonrpc": "2.0", "id": 7, "error": NULL_ID_ERROR}


def sdk_transport(front: str, base: str) -> Any:
    return sse_client(f"{base}/sse") if front == "sse" else websocket_client(base.replace("http://", "ws://") + "/ws")


@pytest.fixture(params=["http", "stdio"])
async def either_proxy(request, start_proxy, tmp_path: Path) -> AsyncIterator[ProxyProcess]:  # type: ignore[no-untyped-def]
    """The proxy before the SDK test server over Streamable HTTP, then over stdio."""
    if request.param == "stdio":
        yield await start_proxy("--upstream", shlex.join(sdk_server_command()))
        return
    server = HttpServerProcess(tmp_path / "http-server.log")
    try:
        await server.start()
        yield await start_proxy("--upstream", server.url)
    finally:
        await server.stop()


@pytest.mark.parametrize("front", FRONTS)
async def test_a_2026_client_negotiates_2026_through_the_front(either_proxy: ProxyProcess, front: str) -> None:
    """Item 11: the SDK client in its default mode discovers 2026-07-28 and does everything a client does,
    whether the upstream is an HTTP server or a stdio child."""
    await exercise_client(sdk_transport(front, either_proxy.base), "auto")


@pytest.mark.parametrize("front", FRONTS)
async def test_server_discover_is_answered_not_missing_a_session(http_proxy: ProxyProcess, front: str) -> None:
    async with raw_front(front, http_proxy.base) as (send, receive):
        await send({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": META}})
        reply = await receive()
        assert "error" not in reply, reply
        assert reply["id"] == 1 and MODERN in reply["result"]["supportedVersions"]


@pytest.mark.parametrize("front", FRONTS)
async def test_cancelling_a_2026_request_lets_go_of_it(start_proxy, scripted, front: str) -> None:  # type: ignore[no-untyped-def]
    """2026-07-28 cancels by closing the request's POST: the upstream sees that, and no notification it has no
    session for; the client hears nothing more of the request, and its next one is answered."""
    server, url = scripted
    proxy: ProxyProcess = await start_proxy("--upstream", url)
    async with raw_front(front, proxy.base) as (send, receive):
        await send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "hang", "_meta": META}})
        await asyncio.wait_for(server.hanging.wait(), 30)
        await send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}})
        await asyncio.wait_for(server.let_go.wait(), 30)
        await send({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "quick", "_meta": META}})
        assert await receive() == {"jsonrpc": "2.0", "id": 6, "result": {"content": []}}
    assert server.notifications == []


@pytest.mark.parametrize("front", FRONTS)
async def test_odd_params_leave_the_session_serving(start_proxy, scripted, front: str) -> None:  # type: ignore[no-untyped-def]
    """Params by position, or an id no request can have, are passed on or ignored; the stream goes on."""
    proxy: ProxyProcess = await start_proxy("--upstream", scripted[1])
    async with raw_front(front, proxy.base) as (send, receive):
        await send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": [INIT]})
        await receive()
        await send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": [1]})
        await send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": [1]}})
        await send({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "quick", "_meta": META}})
        assert await receive() == {"jsonrpc": "2.0", "id": 6, "result": {"content": []}}


@pytest.mark.parametrize("front", FRONTS)
async def test_a_listen_stream_outlives_the_request_timeout(start_proxy, http_server, front: str) -> None:  # type: ignore[no-untyped-def]
    """``subscriptions/listen`` is meant to stay open: no request timeout cuts it, as on the Streamable HTTP front."""
    proxy: ProxyProcess = await start_proxy("--upstream", http_server.url, "--request-timeout", "1")
    async with raw_front(front, proxy.base) as (send, receive):
        listen = {"notifications": {"toolsListChanged": True}, "_meta": META}
        await send({"jsonrpc": "2.0", "id": 4, "method": "subscriptions/listen", "params": listen})
        assert (await receive())["method"] == "notifications/subscriptions/acknowledged"
        await asyncio.sleep(2)
        await send({"jsonrpc": "2.0", "id": 5, "method": "server/discover", "params": {"_meta": META}})
        reply = await receive()
        assert reply["id"] == 5 and "result" in reply, reply


@pytest.fixture
async def headers_server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """An SDK server whose tool checks ``Mcp-Param-Region`` against its ``region`` argument."""
    port = free_port()
    server = ServerProcess(tmp_path / "headers-server.log")
    try:
        base = f"http://127.0.0.1:{port}"
        yield await server.start([sys.executable, str(HEADERS_SERVER), str(port)], f"{base}/mcp", f"{base}/")
    finally:
        await server.stop()


async def test_the_upstream_refuses_a_call_without_its_param_header(start_proxy, headers_server) -> None:  # type: ignore[no-untyped-def]
    """The control: the headers are checked, so a client that leaves one out is refused."""
    proxy: ProxyProcess = await start_proxy("--upstream", headers_server.url)
    params = {"name": "where", "arguments": {"region": "eu"}, "_meta": META}
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "where",
    }
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}
    async with aiohttp.ClientSession() as client, client.post(proxy.url, json=call, headers=headers) as answer:
        assert answer.status == 400
        assert (await answer.json())["error"]["code"] == -32020


@pytest.mark.parametrize("front", FRONTS)
async def test_mcp_param_and_name_headers_reach_the_upstream(start_proxy, headers_server, front: str) -> None:  # type: ignore[no-untyped-def]
    """Through a front whose client sends no headers, the call carries the ones the SDK client would."""
    proxy: ProxyProcess = await start_proxy("--upstream", headers_server.url)
    async with Client(sdk_transport(front, proxy.base), mode="auto", read_timeout_seconds=30) as client:
        assert client.protocol_version == MODERN
        await client.list_tools()
        assert text_of(await client.call_tool("where", {"region": "eu-west é"})) == "region eu-west é"


SCHEMA = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "flag": {"type": "boolean", "x-mcp-header": "Flag"},
        "nested": {"type": "object", "properties": {"depth": {"type": "integer", "x-mcp-header": "Depth"}}},
    },
}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": META}}
REQUESTS = [
    {"method": "server/discover", "params": {}},
    {"method": "tools/list", "params": {}},
    {"method": "tools/call", "params": {"name": "t", "arguments": {"region": " eu\n", "flag": True}}},
    {"method": "tools/call", "params": {"name": "t", "arguments": {"nested": {"depth": 3}, "flag": None}}},
    {"method": "tools/call", "params": {"name": "unlisted", "arguments": {"region": "x"}}},
    {"method": "tools/call", "params": {"name": "=?base64?eA==?="}},
    {"method": "prompts/get", "params": {"name": "grüße"}},
    {"method": "resources/read", "params": {"uri": "file:///a b"}},
    {"method": "resources/subscribe", "params": {"uri": "file:///a"}},
]


@pytest.mark.parametrize("request_data", REQUESTS, ids=[str(i) for i in range(len(REQUESTS))])
async def test_the_headers_are_the_ones_the_sdk_client_sends(request_data: dict[str, Any]) -> None:
    """One derivation for every front, checked against the SDK client's own stamp for the same request."""
    maps = {"t": x_mcp_header_map(SCHEMA)}
    stamp = _make_modern_stamp(
        MODERN, {"name": "raw"}, {}, lambda name, args: mcp_param_headers(maps.get(name, {}), args)
    )
    data = orjson.loads(orjson.dumps(request_data))
    opts: dict[str, Any] = {}
    stamp(data, opts)  # type: ignore[arg-type]
    expected = {name.lower(): value for name, value in opts["headers"].items()}

    tools = ToolHeaders()
    listing = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "t", "inputSchema": SCHEMA}]}}
    await tools.learn(decode(orjson.dumps(LIST)), decode(orjson.dumps(listing)))  # type: ignore[arg-type]
    message = decode(orjson.dumps({"jsonrpc": "2.0", "id": 2, **data}))
    derived = client_headers(message, None, tools)  # type: ignore[arg-type]
    assert {name.lower(): value for name, value in derived.items()} == expected
