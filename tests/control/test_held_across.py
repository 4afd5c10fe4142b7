"""Holds outlive the instance they were made on: decided on another instance of a cluster (real Redis), and
listed with how they ended after a restart (SQLite)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from mcp import Client

from shadowproxy.core.tasks import spawn
from tests.control.test_approvals import api, calls, pending, proxy_config
from tests.support import ProxyProcess


async def test_held_on_a_decided_on_b(tmp_path: Path, redis_url: str) -> None:
    instances: list[ProxyProcess] = []
    try:
        starts = []
        for name in ("a", "b"):
            cluster = {"instance_id": name, "heartbeat_interval": 0.5, "heartbeat_ttl": 3}
            config = proxy_config(tmp_path, redis_url, name=name, cluster=cluster)
            instances.append(ProxyProcess(tmp_path / f"{name}.log"))
            starts.append(instances[-1].start("--config", str(config)))
        # Side by side: each start is mostly the interpreter's imports.
        await asyncio.gather(*starts)
        a, b = instances
        async with Client(a.url, mode="legacy") as client:
            call = spawn(client.call_tool("pay", {"amount": 9, "to": "dora"}), name="pay")
            (held,) = await pending(b.base)  # listed on b: the store keeps it
            assert held["instance"] == "a"
            status, decided = await api(b.base, "POST", f"/approvals/{held['id']}", {"decision": "approve", "by": "bo"})
            assert status == 200 and decided["state"] == "approved"
            status, _ = await api(a.base, "POST", f"/approvals/{held['id']}", {"decision": "deny"})
            assert status == 409  # nothing is decided twice, wherever it is asked
            result = await asyncio.wait_for(call, 30)
        assert result.content[0].text == "paid 9 to dora"  # type: ignore[union-attr]
        assert calls(tmp_path)[-1]["arguments"] == {"amount": 9, "to": "dora"}
    finally:
        await asyncio.gather(*(instance.stop() for instance in instances))


async def test_pending_across_a_restart_is_listed_with_how_it_ended(tmp_path: Path) -> None:
    config = proxy_config(tmp_path, f"sqlite:///{tmp_path}/store.db")
    first = await ProxyProcess(tmp_path / "first.log").start("--config", str(config))
    held: dict[str, str] = {}

    async def hold_then_kill() -> None:
        async with Client(first.url, mode="legacy") as client:
            call = spawn(client.call_tool("pay", {"amount": 1, "to": "erin"}), name="pay")
            held.update((await pending(first.base))[0])
            first.signal(signal.SIGKILL)
            await first.wait()
            await call

    try:
        with pytest.raises(Exception):  # noqa: B017 - the connection is cut, whatever the client calls it
            await hold_then_kill()
    finally:
        await first.stop()
    second = await ProxyProcess(tmp_path / "second.log").start("--config", str(config))
    try:
        status, hold = await api(second.base, "GET", f"/approvals/{held['id']}")
        assert status == 200 and hold["state"] == "expired" and hold["decider"] == "restart"
        assert hold["reason"].startswith("expired at restart")
        assert calls(tmp_path) == []
    finally:
        await second.stop()
