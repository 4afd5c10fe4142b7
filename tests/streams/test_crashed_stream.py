"""A WebSocket or legacy SSE session whose stdio server exited ends: the client is told, then the stream closes."""

from __future__ import annotations

import aiohttp
import orjson

from tests.support import ProxyProcess, until

INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}


def request(request_id: int, method: str, params: dict | None = None) -> str:  # type: ignore[type-arg]
    body = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return orjson.dumps(body).decode()


async def test_a_websocket_whose_server_exited_is_closed_after_saying_why(stdio_proxy: ProxyProcess) -> None:
    url = stdio_proxy.base.replace("http://", "ws://") + "/ws"
    async with aiohttp.ClientSession() as client, client.ws_connect(url, protocols=("mcp",)) as ws:
        await ws.send_str(request(1, "initialize", INIT))
        assert "result" in orjson.loads((await ws.receive(timeout=30)).data)
        await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).decode())
        await ws.send_str(request(2, "tools/call", {"name": "crash", "arguments": {}}))
        crashed = orjson.loads((await ws.receive(timeout=30)).data)
        assert crashed["id"] == 2 and crashed["error"]["code"] == -32000
        await until(lambda: "exited with code 3" in stdio_proxy.log(), "the exit to be logged")
        await ws.send_str(request(3, "tools/list"))
        message = await ws.receive(timeout=30)
        assert message.type is aiohttp.WSMsgType.TEXT, (message, stdio_proxy.log()[-1500:])
        ended = orjson.loads(message.data)
        assert ended["id"] == 3 and "session ended" in ended["error"]["message"]
        closing = await ws.receive(timeout=30)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1011
