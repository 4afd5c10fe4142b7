"""Authentication on the other HTTP client sides: WebSocket and the legacy HTTP+SSE transport."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest

from shadowproxy.core.sse import SseParser

from .helpers import INIT, PING, bearer, start_with_auth, write_config
from .keys import sha256

ALICE, BOB = "alice-token", "bob-token"
TOKENS = {"tokens": [{"name": "alice", "sha256": sha256(ALICE)}, {"name": "bob", "sha256": sha256(BOB)}]}


async def test_websocket_needs_a_token(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_with_auth(start_proxy, write_config(tmp_path / "sp.yaml", TOKENS))
    url = proxy.url.replace("http://", "ws://") + "/ws"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, protocols=("mcp",))
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, protocols=("mcp",), headers=bearer("wrong"))
        assert refused.value.status == 401
        async with asyncio.timeout(30), http.ws_connect(url, protocols=("mcp",), headers=bearer(ALICE)) as ws:
            await ws.send_str(orjson.dumps(INIT).decode())
            reply = orjson.loads((await ws.receive()).data)
            assert reply["id"] == 1 and "result" in reply
            await ws.send_str(orjson.dumps(PING).decode())
            while (message := orjson.loads((await ws.receive()).data)).get("id") != PING["id"]:
                pass
            assert message["result"] == {}


async def test_legacy_sse_sessions_are_bound_to_their_principal(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_with_auth(start_proxy, write_config(tmp_path / "sp.yaml", TOKENS))
    sse_url = proxy.url + "/sse"
    async with aiohttp.ClientSession() as http:
        async with http.get(sse_url, headers={"Accept": "text/event-stream"}) as response:
            assert response.status == 401
        headers = {"Accept": "text/event-stream", **bearer(ALICE)}
        async with asyncio.timeout(30), http.get(sse_url, headers=headers) as stream:
            assert stream.status == 200
            parser, events = SseParser(), []
            while not events:
                events = parser.feed(await stream.content.readany())
            assert events[0].event == "endpoint"
            endpoint = proxy.base + events[0].data.decode()
            post = {"Content-Type": "application/json"}
            async with http.post(endpoint, data=orjson.dumps(INIT), headers={**post, **bearer(BOB)}) as response:
                assert response.status == 404, "another principal cannot use the session"
            async with http.post(endpoint, data=orjson.dumps(INIT), headers=post) as response:
                assert response.status == 401
            async with http.post(endpoint, data=orjson.dumps(INIT), headers={**post, **bearer(ALICE)}) as response:
                assert response.status == 202
            replies = events[1:]
            while not replies:
                replies = parser.feed(await stream.content.readany())
            assert orjson.loads(replies[0].data)["id"] == 1
