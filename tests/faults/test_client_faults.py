"""Clients that go away mid-request and mid-stream: the proxy lets go of what they held, keeps their session,
and serves everyone else."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from shadowproxy.core.sse import SseParser
from tests.support import ProxyProcess, until

from .helpers import RawClient, readyz, rogue, text_of


async def idle(proxy: ProxyProcess, tasks: int) -> None:
    async def settled() -> bool:
        ready = await readyz(proxy)
        return ready["in_flight"] == 0 and ready["tasks"]["total"] <= tasks

    await until(settled, "the proxy to let go of the departed client")


async def test_client_leaves_mid_request_and_mid_stream(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", rogue())
    async with aiohttp.ClientSession() as http:
        stays = await RawClient(http, proxy.url).initialize()
        leaves = await RawClient(http, proxy.url).initialize()
        baseline = (await readyz(proxy))["tasks"]["total"]

        # Mid-request: a call the server never answers, on a connection the client then drops.
        async with aiohttp.ClientSession() as doomed:
            body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "hang", "arguments": {}}}
            call = asyncio.ensure_future(doomed.post(leaves.url, json=body, headers=leaves.headers))  # noqa: TID251

            async def busy() -> bool:
                return (await readyz(proxy))["in_flight"] == 1

            await until(busy, "the call to be in flight")
            call.cancel()
        await idle(proxy, baseline)

        # Mid-stream: an SSE answer the client stops reading after a few events.
        body = {
            "jsonrpc": "2.0",
            "id": 8,
            "method": "tools/call",
            "params": {"name": "drip", "arguments": {"count": 200}},
        }
        async with aiohttp.ClientSession() as doomed, doomed.post(leaves.url, json=body, headers=leaves.headers) as r:
            assert r.content_type == "text/event-stream"
            parser, events = SseParser(), 0
            async for chunk in r.content.iter_any():
                events += len(parser.feed(chunk))
                if events >= 5:
                    break
        assert text_of((await stays.call("echo", text="unbothered"))[1][-1]) == "unbothered"
        await idle(proxy, baseline)
        # The session of the client that left is still there for it (the handshake era does not cancel on a drop).
        status, seen = await leaves.request("ping")
        assert status == 200 and seen[-1]["result"] == {} and seen[-1]["id"] == leaves.ids
    assert "Traceback" not in proxy.log()


async def test_get_stream_dropped_and_reopened(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", rogue())
    async with aiohttp.ClientSession() as http:
        client = await RawClient(http, proxy.url).initialize()
        headers = {"Accept": "text/event-stream", "Mcp-Session-Id": client.session_id}
        async with aiohttp.ClientSession() as doomed, doomed.get(client.url, headers=headers) as stream:
            assert stream.status == 200
        # Once the proxy has seen the drop, the session may open its GET stream again (no stale 409).

        async def reopened() -> bool:
            async with http.get(client.url, headers=headers) as again:
                return again.status == 200

        await until(reopened, "a new GET stream to be accepted")
        async with http.get(client.url, headers=headers) as stream:
            assert stream.status == 200
            _, seen = await client.call("flood_later", count=3)
            assert text_of(seen[-1]) == "flood_later done"
            parser, found = SseParser(), []
            async with asyncio.timeout(30):
                async for chunk in stream.content.iter_any():
                    found += [orjson.loads(event.data) for event in parser.feed(chunk) if event.data]
                    if found and found[-1].get("method") == "notifications/done":
                        break
            assert [message["params"].get("data") for message in found[:-1]] == [0, 1, 2]
