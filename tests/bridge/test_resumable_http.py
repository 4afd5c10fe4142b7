"""A handshake-era client's bridged session on a 2026-07-28-only HTTP upstream gets resumable streams.

The upstream's 2026-07-28 answers carry no event ids, so the proxy makes its own, as it does for a stdio
upstream (tests/streams/test_resumption.py): a priming event, an id on every event, polling of a quiet stream,
and ``Last-Event-ID`` served from the proxy's event log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from mcp import Client

from tests.bridge.conftest import EraHttpServer
from tests.streams.test_resumption import RawClient, messages, read_events
from tests.support import ProxyProcess, child_env
from tests.test_proxy_http import text_of

pytestmark = pytest.mark.asyncio(loop_scope="package")


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def polling_proxy(tmp_path_factory: Any, new_http: EraHttpServer) -> AsyncIterator[ProxyProcess]:
    """The proxy in front of the 2026-07-28-only HTTP server, closing quiet streams after 0.2 s."""
    tmp: Path = tmp_path_factory.mktemp("bridge_resumable")
    path = tmp / "shadowproxy.yaml"
    path.write_text(yaml.safe_dump({"upstreams": {"new": {"url": new_http.url}}}))
    env = child_env(SHADOWPROXY_POLL_AFTER="0.2", SHADOWPROXY_SSE_RETRY="0.05")
    started = ProxyProcess(tmp / "proxy.log")
    try:
        yield await started.start("--config", str(path), env=env)
    finally:
        await started.stop()


async def test_a_bridged_answer_is_a_primed_stream_with_an_id_on_every_event(polling_proxy: ProxyProcess) -> None:
    async with aiohttp.ClientSession() as http:
        client = RawClient(http, f"{polling_proxy.base}/mcp/new")
        await client.initialize()
        body = client.call(1, "count", {"steps": 2})
        async with http.post(client.url, data=body, headers=client.headers()) as reply:
            assert reply.content_type == "text/event-stream"
            events = await read_events(reply)
    priming, *rest = events
    assert priming.data == b"" and priming.id and priming.retry == 50
    assert all(event.id for event in rest) and len({event.id for event in events}) == len(events)
    assert messages(rest)[-1]["result"]["content"][0]["text"] == "counted 2"  # type: ignore[index]


async def test_a_quiet_bridged_answer_is_polled_and_resumed_with_last_event_id(polling_proxy: ProxyProcess) -> None:
    async with aiohttp.ClientSession() as http:
        client = RawClient(http, f"{polling_proxy.base}/mcp/new")
        await client.initialize()
        body = client.call(2, "slow", {"seconds": 1})
        async with http.post(client.url, data=body, headers=client.headers()) as reply:
            events = await read_events(reply)
        assert [event.data for event in events] == [b""], "the quiet stream ends after its priming event"
        rest: list[Any] = []
        for _ in range(50):
            # Polled again while the tool still sleeps: back with the id seen, as a client does.
            headers = client.headers(**{"Last-Event-ID": events[0].id or ""})
            async with http.get(client.url, headers=headers) as resumed:
                assert resumed.status == 200
                rest = messages(await read_events(resumed))
            if any("result" in message for message in rest):
                break
    assert rest[-1]["result"]["content"][0]["text"] == "slept 1.0"

    async with Client(f"{polling_proxy.base}/mcp/new", mode="legacy") as sdk:
        assert text_of(await sdk.call_tool("slow", {"seconds": 0.6})) == "slept 0.6"
