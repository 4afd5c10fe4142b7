"""A client that does not read: its stream is closed with a reason and counted, and other sessions go on.

The proxy runs in this process, so the send buffer can be made small; the
upstream is a real stdio child that floods, the clients real sockets.
"""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from prometheus_client import REGISTRY

from shadowproxy.core.sse import SseParser
from shadowproxy.proxy.proxy import Proxy
from tests.support import until

FLOOD_COUNT = 30_000
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}


def call(request_id: int, count: int) -> bytes:
    params = {"name": "flood", "arguments": {"count": count}}
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


def initialize() -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT})


def overflows(transport: str) -> float:
    return REGISTRY.get_sample_value("shadowproxy_stream_overflows_total", {"transport": transport}) or 0.0


async def fast_client_works(client: aiohttp.ClientSession, address: str) -> None:
    """A second session gets every message of its own small flood while the slow one is stuck."""
    async with client.ws_connect(f"ws://{address}/ws", protocols=("mcp",)) as ws:
        await ws.send_str(initialize().decode())
        assert orjson.loads((await ws.receive(timeout=30)).data)["id"] == 0
        await ws.send_str(call(1, 50).decode())
        logs = 0
        while True:
            message = orjson.loads((await ws.receive(timeout=30)).data)
            if message.get("id") == 1:
                break
            logs += 1
        assert logs == 50
        assert message["result"]["content"][0]["text"] == "flooded 50"


async def test_a_websocket_reader_that_falls_behind_is_closed(flood_proxy: tuple[Proxy, str]) -> None:
    live, address = flood_proxy
    before = overflows("websocket")
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"ws://{address}/ws", protocols=("mcp",)) as slow:
            await slow.send_str(initialize().decode())
            assert orjson.loads((await slow.receive(timeout=30)).data)["id"] == 0
            await slow.send_str(call(1, FLOOD_COUNT).decode())
            await until(lambda: overflows("websocket") > before, "the slow reader's stream to overflow")
            await fast_client_works(client, address)
            while True:
                frame = await slow.receive(timeout=30)
                if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
            assert frame.type is not WSMsgType.CLOSE or frame.data == 1013
        await until(lambda: len(live.sessions) == 0, "the sessions to close")
    assert overflows("websocket") == before + 1


async def test_an_sse_reader_that_falls_behind_is_closed(flood_proxy: tuple[Proxy, str]) -> None:
    live, address = flood_proxy
    before = overflows("sse")
    async with aiohttp.ClientSession() as client:
        stream = await client.get(f"http://{address}/sse")
        parser = SseParser()
        events = []
        while not events:
            events = parser.feed(await stream.content.readany())
        endpoint = f"http://{address}{events[0].data.decode()}"
        headers = {"Content-Type": "application/json"}
        async with client.post(endpoint, data=initialize(), headers=headers) as answer:
            assert answer.status == 202
        async with client.post(endpoint, data=call(1, FLOOD_COUNT), headers=headers) as answer:
            assert answer.status == 202
        await until(lambda: overflows("sse") > before, "the slow reader's stream to overflow")
        await fast_client_works(client, address)
        with pytest.raises(aiohttp.ClientPayloadError):
            while await stream.content.readany():
                pass
        async with client.post(endpoint, data=call(2, 1), headers=headers) as answer:
            assert answer.status == 404
        await until(lambda: len(live.sessions) == 0, "the sessions to close")
    assert overflows("sse") == before + 1
