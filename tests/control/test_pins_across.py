"""Tool pins in a cluster (real Redis): a change approved on one instance is approved on the other at once, not
at its next start."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.control.test_pins import DRIFTING, POISONED, tools
from tests.ops.helpers import TOKEN, admin
from tests.support import ProxyProcess


async def echo_refused(url: str) -> bool:
    async with Client(url, mode="legacy") as client:
        await client.list_tools()  # a change is found in a list
        try:
            await client.call_tool("echo", {"text": "hi"})
        except MCPError as exc:
            assert "changed since it was pinned" in exc.error.message
            return True
    return False


async def test_an_approval_on_a_holds_on_b_at_once(tmp_path: Path, redis_url: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    instances: list[ProxyProcess] = []
    try:
        starts = []
        for name in ("a", "b"):
            config = {
                "store": redis_url,
                "upstreams": {"drift": {"command": [sys.executable, str(DRIFTING), str(state)]}},
                "admin": {"token": TOKEN},
                "pinning": {"mode": "block"},
                "cluster": {"instance_id": name, "heartbeat_interval": 0.5, "heartbeat_ttl": 3},
            }
            (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
            instances.append(ProxyProcess(tmp_path / f"{name}.log"))
            starts.append(instances[-1].start("--config", str(tmp_path / f"{name}.yaml")))
        await asyncio.gather(*starts)
        a, b = instances
        for instance in instances:  # each trusts the first list it sees
            assert (await tools(instance.url))["echo"] == "Echo the text back."
        (state / "description").write_text(POISONED)
        assert await echo_refused(a.url) and await echo_refused(b.url)
        assert "echo" not in await tools(b.url)

        status, _ = await admin(a.base, "POST", "/pins/drift/echo/approve")
        assert status == 200
        for _ in range(200):
            _, listed = await admin(b.base, "GET", "/pins")
            if not listed["scopes"][0]["changes"]:
                break
            await asyncio.sleep(0.05)
        assert listed["scopes"][0]["changes"] == []
        assert not await echo_refused(b.url)
        assert (await tools(b.url))["echo"] == POISONED
        status, shown = await admin(b.base, "GET", "/pins/drift/echo")
        assert status == 200 and shown["old"]["description"] == POISONED  # the new definition is b's pin too

        status, _ = await admin(b.base, "DELETE", "/pins/drift")
        assert status == 200
        for _ in range(200):
            _, listed = await admin(a.base, "GET", "/pins")
            if not listed["scopes"]:
                break
            await asyncio.sleep(0.05)
        assert listed["scopes"] == []  # a reset reaches the other instance too
    finally:
        await asyncio.gather(*(instance.stop() for instance in instances))
