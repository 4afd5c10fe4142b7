"""WebSocket through the proxy, on either side: the SDK at both ends, close codes, ping/pong and bad frames."""

from __future__ import annotations

import shlex
import signal

import aiohttp
import orjson
from aiohttp import WSMsgType
from mcp.client.sse import sse_client

from tests.streams.conftest import ServerProcess
from tests.streams.ws_transport import websocket_client
from tests.support import ProxyProcess, child_env, free_port, sdk_server_command, until
from tests.test_proxy_http import exercise_client
from tests.test_proxy_stdio import proxy_params

INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
INITIALIZE = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}).decode()


def ws_url(proxy: ProxyProcess, path: str = "/ws") -> str:
    return proxy.base.replace("http://", "ws://") + path


async def no_sessions(proxy: ProxyProcess) -> bool:
    async with aiohttp.ClientSession() as client, client.get(f"{proxy.base}/readyz") as response:
        return (await response.json())["sessions"] == 0  # type: ignore[no-any-return]


async def test_websocket_client_to_stdio_upstream(stdio_proxy: ProxyProcess) -> None:
    """Tools, progress, logs and a sampling request over one WebSocket to a stdio child; the session ends with it."""
    await exercise_client(websocket_client(ws_url(stdio_proxy)), "legacy")
    await until(lambda: no_sessions(stdio_proxy), "the session to close with its WebSocket")


async def test_websocket_client_to_http_upstream_at_the_mount_path(http_proxy: ProxyProcess) -> None:
    await exercise_client(websocket_client(ws_url(http_proxy, "/mcp/ws")), "legacy")


async def test_streamable_http_client_to_websocket_upstream(start_proxy, ws_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", ws_server.url)
    await exercise_client(proxy.url, "legacy")


async def test_sse_client_to_websocket_upstream(start_proxy, ws_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", ws_server.url)
    await exercise_client(sse_client(f"{proxy.base}/sse"), "legacy")


async def test_bad_frames_and_pings(stdio_proxy: ProxyProcess) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(ws_url(stdio_proxy), protocols=("mcp",), autoping=False) as ws:
            assert ws.protocol == "mcp"
            await ws.send_str("{not json")
            reply = orjson.loads((await ws.receive(timeout=30)).data)
            assert reply["error"]["code"] == -32700 and reply["id"] is None
            await ws.send_str('{"jsonrpc": "2.0", "id": 7, "method": 5}')
            reply = orjson.loads((await ws.receive(timeout=30)).data)
            assert reply["error"]["code"] == -32600 and reply["id"] == 7
            await ws.ping(b"are you there")
            pong = await ws.receive(timeout=30)
            assert pong.type is WSMsgType.PONG and pong.data == b"are you there"
            await ws.send_str(INITIALIZE)
            reply = orjson.loads((await ws.receive(timeout=30)).data)
            assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "test-server"
            await ws.send_bytes(b"\x00\x01")
            closing = await ws.receive(timeout=30)
            assert closing.type is WSMsgType.CLOSE
            assert closing.data == 1003 and "binary" in closing.extra


async def test_refused_handshakes(stdio_proxy: ProxyProcess) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{stdio_proxy.base}/ws") as response:
            assert response.status == 426
        try:
            await client.ws_connect(ws_url(stdio_proxy))
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 400
        else:
            raise AssertionError("a WebSocket without subprotocol mcp was accepted")


async def test_an_unreachable_upstream_closes_with_1011(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", f"ws://127.0.0.1:{free_port()}/ws")
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(proxy), protocols=("mcp",)) as ws:
        closing = await ws.receive(timeout=30)
        assert closing.type is WSMsgType.CLOSE
        assert closing.data == 1011 and "unreachable" in closing.extra


async def test_shutdown_closes_with_1001(stdio_proxy: ProxyProcess) -> None:
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(stdio_proxy), protocols=("mcp",)) as ws:
        await ws.send_str(INITIALIZE)
        assert orjson.loads((await ws.receive(timeout=30)).data)["id"] == 1
        stdio_proxy.signal(signal.SIGTERM)
        closing = await ws.receive(timeout=30)
        assert closing.type is WSMsgType.CLOSE
        assert closing.data == 1001 and "shutting down" in closing.extra
    assert await stdio_proxy.wait() == 0


async def test_websocket_client_to_websocket_upstream(start_proxy, ws_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", ws_server.url)
    await exercise_client(websocket_client(ws_url(proxy)), "legacy")
    await until(lambda: no_sessions(proxy), "the session to close with its WebSocket")


async def test_websocket_client_to_sse_upstream(start_proxy, sse_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", sse_server.url)
    await exercise_client(websocket_client(ws_url(proxy)), "legacy")


async def test_stdio_client_to_websocket_upstream(ws_server: ServerProcess) -> None:
    """``shadowproxy stdio`` bridged to a WebSocket server."""
    await exercise_client(proxy_params("--upstream", ws_server.url), "legacy")


async def test_a_frame_over_the_size_bound_closes_with_1009(start_proxy) -> None:  # type: ignore[no-untyped-def]
    env = child_env(SHADOWPROXY_MAX_BODY_SIZE="2048")
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), env=env)
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(proxy), protocols=("mcp",)) as ws:
        params = {"name": "echo", "arguments": {"text": "x" * 3000}}
        await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).decode())
        closing = await ws.receive(timeout=30)
        assert closing.type is WSMsgType.CLOSE
        assert closing.data == 1009
