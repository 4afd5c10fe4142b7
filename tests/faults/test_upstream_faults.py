"""Upstream faults, each a real scenario against a misbehaving stdio server: what the client saw, that other
sessions carried on, and that the proxy stayed healthy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson

from shadowproxy.core.errors import REQUEST_TIMEOUT, SESSION_NOT_FOUND, UPSTREAM_UNAVAILABLE
from shadowproxy.core.sse import SseParser
from tests.support import until

from .helpers import RawClient, readyz, rogue, text_of


async def test_child_crashes_mid_request(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", rogue())
    async with aiohttp.ClientSession() as http:
        doomed = await RawClient(http, proxy.url).initialize()
        other = await RawClient(http, proxy.url).initialize()
        status, seen = await doomed.call("crash")
        # What the client saw: the server's last words on the stream, then a JSON-RPC error naming the exit.
        assert status == 200
        assert seen[0]["method"] == "notifications/message" and seen[0]["params"]["data"] == "dying"
        assert (
            seen[-1]["error"]["code"] == UPSTREAM_UNAVAILABLE and "exited with code 3" in seen[-1]["error"]["message"]
        )
        status, seen = await other.call("echo", text="still here")
        assert status == 200 and text_of(seen[-1]) == "still here"
        # The crashed session ended with its process: its next request gets 404, and a new session works.
        status, seen = await doomed.request("ping")
        assert status == 404 and seen[-1]["error"]["code"] == SESSION_NOT_FOUND, (status, seen)
        fresh = await RawClient(http, proxy.url).initialize()
        assert text_of((await fresh.call("echo", text="new"))[1][-1]) == "new"
    assert "exited with code 3" in proxy.log()


async def test_upstream_hangs_until_request_timeout(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "received.jsonl"
    proxy = await start_proxy("--upstream", rogue(record), "--request-timeout", "2")
    async with aiohttp.ClientSession() as http:
        stuck = await RawClient(http, proxy.url).initialize()
        other = await RawClient(http, proxy.url).initialize()
        hanging = asyncio.ensure_future(stuck.call("hang"))  # noqa: TID251
        await until(lambda: '"hang"' in record.read_text(), "the server to receive the call")
        # Another session is served while this one waits.
        assert text_of((await other.call("echo", text="meanwhile"))[1][-1]) == "meanwhile"
        assert not hanging.done()
        status, seen = await hanging
        assert status == 200 and seen[-1]["error"]["code"] == REQUEST_TIMEOUT and seen[-1]["id"] == stuck.ids
        # The server is told to stop working on it, and the session goes on.
        await until(lambda: "notifications/cancelled" in record.read_text(), "the cancellation upstream")
        assert f'"requestId":{stuck.ids}' in record.read_text()
        status, seen = await stuck.request("ping")
        assert status == 200 and seen[-1]["result"] == {}


async def test_garbage_and_broken_lines(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", rogue())
    async with aiohttp.ClientSession() as http:
        client = await RawClient(http, proxy.url).initialize()
        status, seen = await client.call("garbage")
        assert status == 200 and len(seen) == 1, "garbage and replies to unknown ids never reach the client"
        assert text_of(seen[0]) == "garbage done"
        status, seen = await client.call("split")
        assert status == 200 and text_of(seen[-1]) == "split done"
        status, seen = await client.call("half_exit")
        assert seen[-1]["error"]["code"] == UPSTREAM_UNAVAILABLE and "exited" in seen[-1]["error"]["message"]
    assert "not JSON-RPC" in proxy.log()
    ready = await readyz(proxy)
    assert ready["status"] == "ready" and ready["in_flight"] == 0


async def test_notification_flood(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", rogue())
    async with aiohttp.ClientSession() as http:
        flooded = await RawClient(http, proxy.url).initialize()
        other = await RawClient(http, proxy.url).initialize()
        flood = asyncio.ensure_future(flooded.call("flood", count=20_000))  # noqa: TID251
        pings = 0
        while not flood.done():
            status, seen = await other.request("ping")
            assert status == 200 and seen[-1]["result"] == {}
            pings += 1
        status, seen = await flood
        # Every notification arrives, in order, before the reply: nothing dropped on a request's own stream.
        assert status == 200 and len(seen) == 20_001
        assert [message["params"]["data"] for message in seen[:-1]] == list(range(20_000))
        assert text_of(seen[-1]) == "flood done"
        assert pings >= 1
        # Unsolicited messages with no stream to take them yet: the session keeps a bounded backlog (the newest)
        # for its GET stream, so a flood costs bounded memory; what arrives is in order and ends with the last.
        status, seen = await flooded.call("flood_later", count=5_000)
        assert text_of(seen[-1]) == "flood_later done"
        backlog = await read_get_stream(http, flooded, until_method="notifications/done")
        numbers = [message["params"]["data"] for message in backlog if message["method"] == "notifications/message"]
        assert numbers == sorted(set(numbers)) and numbers[-1] == 4_999
        assert (await other.request("ping"))[1][-1]["result"] == {}
    ready = await readyz(proxy)
    assert ready["in_flight"] == 0


async def read_get_stream(http: aiohttp.ClientSession, client: RawClient, until_method: str) -> list[dict]:  # type: ignore[type-arg]
    headers = {"Accept": "text/event-stream", "Mcp-Session-Id": client.session_id}
    found: list[dict] = []  # type: ignore[type-arg]
    parser = SseParser()
    async with asyncio.timeout(30), http.get(client.url, headers=headers) as response:
        assert response.status == 200
        async for chunk in response.content.iter_any():
            for event in parser.feed(chunk):
                if event.data:
                    found.append(orjson.loads(event.data))
            if found and found[-1].get("method") == until_method:
                return found
    raise AssertionError("the GET stream ended early")


async def test_a_websocket_request_times_out_and_the_socket_serves_on(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "received.jsonl"
    proxy = await start_proxy("--upstream", rogue(record), "--request-timeout", "1")
    url = proxy.base.replace("http://", "ws://") + "/ws"
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "ws", "version": "1"}}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=("mcp",)) as ws:
        await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}).decode())
        assert "result" in orjson.loads((await ws.receive()).data)
        await ws.send_str('{"jsonrpc":"2.0","method":"notifications/initialized"}')
        hang = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "hang", "arguments": {}}}
        await ws.send_str(orjson.dumps(hang).decode())
        await until(lambda: '"hang"' in record.read_text(), "the server to receive the call")
        # Answered meanwhile: the hanging request holds nothing else up.
        await ws.send_str('{"jsonrpc":"2.0","id":3,"method":"ping"}')
        assert orjson.loads((await ws.receive()).data) == {"jsonrpc": "2.0", "id": 3, "result": {}}
        timed_out = orjson.loads((await ws.receive()).data)
        assert timed_out["id"] == 2 and timed_out["error"]["code"] == REQUEST_TIMEOUT
        await until(lambda: "notifications/cancelled" in record.read_text(), "the cancellation upstream")
        await ws.send_str('{"jsonrpc":"2.0","id":4,"method":"ping"}')
        assert orjson.loads((await ws.receive()).data) == {"jsonrpc": "2.0", "id": 4, "result": {}}
