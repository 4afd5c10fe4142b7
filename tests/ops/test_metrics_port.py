"""``metrics_port``: /metrics alone on its own port, without client auth; on the proxy port, behind it."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import aiohttp

from tests.support import ProxyProcess, free_port

from .helpers import MCP_HEADERS, scrape, value
from .test_request_ids import config

TOKEN = "metrics-test-client-token"
AUTH = {"tokens": [{"name": "alice", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}]}


async def test_metrics_on_their_own_port_need_no_client_token(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    proxy = await start_proxy("--config", str(config(tmp_path, auth=AUTH, metrics_port=port)))
    assert f"metrics are served at http://127.0.0.1:{port}/metrics" in proxy.log()
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{proxy.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 404, "not on the proxy's port any more"
        async with client.post(proxy.url, json={}, headers=MCP_HEADERS) as response:
            assert response.status == 401, "client auth still guards the MCP endpoint"
    samples = await scrape(f"http://127.0.0.1:{port}")
    assert value(samples, "shadowproxy_upstream_up", upstream="flaky") == 1


async def test_metrics_on_the_proxy_port_need_the_client_token(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--config", str(config(tmp_path, auth=AUTH)))
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{proxy.base}/metrics") as response:
            assert response.status == 401
        async with client.get(f"{proxy.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200 and "shadowproxy_upstream_up" in await response.text()


async def test_a_metrics_port_in_use_stops_the_proxy_naming_the_key(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = await start_proxy("--config", str(config(tmp_path)))
    taken = int(first.base.rsplit(":", 1)[1])
    second = ProxyProcess(tmp_path / "second.log")
    await second.spawn(sys.executable, "-m", "shadowproxy", "run", "--port", "0", "--config",
                       str(config(tmp_path, metrics_port=taken)))  # fmt: skip
    assert await second.wait() == 2
    assert f"[metrics_port]: cannot listen on 127.0.0.1:{taken}" in second.log()
