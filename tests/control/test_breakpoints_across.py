"""Breakpoints in a cluster (real Redis): one set on an instance stops the calls that land on another, one removed
there is gone everywhere, and an instance that starts later has them from the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mcp import Client

from shadowproxy.core.tasks import spawn
from tests.control.test_approvals import api, calls, pending, proxy_config
from tests.support import ProxyProcess


async def listed(base: str, count: int) -> list[dict[str, Any]]:
    """The instance's breakpoints, once it lists ``count`` of them."""
    found: list[dict[str, Any]] = []
    for _ in range(200):
        _, body = await api(base, "GET", "/breakpoints")
        found = body["breakpoints"]
        if len(found) == count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{base} lists {found}, not {count} breakpoints")


async def test_a_breakpoint_set_on_one_instance_stops_calls_on_the_others(tmp_path: Path, redis_url: str) -> None:
    instances: list[ProxyProcess] = []

    async def start(name: str) -> ProxyProcess:
        cluster = {"instance_id": name, "heartbeat_interval": 0.5, "heartbeat_ttl": 3}
        config = proxy_config(tmp_path, redis_url, name=name, cluster=cluster)
        instances.append(ProxyProcess(tmp_path / f"{name}.log"))
        return await instances[-1].start("--config", str(config))

    try:
        a, b = await asyncio.gather(start("a"), start("b"))
        status, made = await api(a.base, "POST", "/breakpoints", {"tool": "echo", "direction": "client_to_server"})
        assert status == 201
        assert await listed(b.base, 1) == [made]

        async with Client(b.url, mode="legacy") as client:
            call = spawn(client.call_tool("echo", {"text": "stopped on b"}), name="echo")
            (held,) = await pending(a.base)
            assert held["instance"] == "b" and calls(tmp_path) == []
            status, _ = await api(a.base, "POST", f"/approvals/{held['id']}", {"decision": "approve"})
            assert status == 200
            result = await asyncio.wait_for(call, 30)
        assert result.content[0].text == "stopped on b"  # type: ignore[union-attr]

        c = await start("c")  # after the breakpoint was set: the store has it
        assert await listed(c.base, 1) == [made]

        status, _ = await api(b.base, "DELETE", f"/breakpoints/{made['id']}")
        assert status == 204
        assert await listed(a.base, 0) == [] and await listed(c.base, 0) == []
        async with Client(a.url, mode="legacy") as client:
            result = await asyncio.wait_for(client.call_tool("echo", {"text": "free"}), 30)
        assert result.content[0].text == "free"  # type: ignore[union-attr]
    finally:
        await asyncio.gather(*(instance.stop() for instance in instances))
