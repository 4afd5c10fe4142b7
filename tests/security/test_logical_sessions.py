"""2026-07-28 requests carry no session: the proxy's own record of them is bounded in size and in number."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support import ProxyProcess, sdk_server_command

from .helpers import INIT, open_session, post

MODERN = "2026-07-28"
HEADERS_2026 = {"MCP-Protocol-Version": MODERN, "Mcp-Method": "server/discover"}


def discover(client_name: str, request_id: int = 1) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": client_name, "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {"jsonrpc": "2.0", "id": request_id, "method": "server/discover", "params": {"_meta": meta}}


def rss(proxy: ProxyProcess) -> int:
    """The proxy's resident memory in bytes."""
    for line in Path(f"/proc/{proxy.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def start(start_proxy, tmp_path: Path, **limits: int) -> ProxyProcess:  # type: ignore[no-untyped-def]
    config = tmp_path / "sp.yaml"
    config.write_text(yaml.safe_dump({"limits": limits} if limits else {}))
    return await start_proxy("--config", str(config), "--upstream", shlex.join(sdk_server_command()))


async def test_distinct_huge_client_names_do_not_grow_memory(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path)
    huge = "x" * (2 * 1024 * 1024)
    for index in range(10):
        status, _, _ = await post(proxy.url, discover(f"{index}{huge}"), **HEADERS_2026)
        assert status == 200
    before = rss(proxy)
    for index in range(10, 110):
        status, reply, _ = await post(proxy.url, discover(f"{index}{huge}", index), **HEADERS_2026)
        assert status == 200 and reply["id"] == index
    grown = rss(proxy) - before
    # Kept whole, a hundred 2 MB names would add 200 MB or more.
    assert grown < 40 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"


async def test_logical_sessions_count_against_the_limits_and_give_way(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, max_sessions_per_principal=3)
    sessions = [await open_session(proxy.url) for _ in range(3)]
    status, reply, _ = await post(proxy.url, INIT)
    assert status == 429 and reply["error"]["data"] == {"limit": "sessions_per_principal"}
    # Nothing that can give way: a stateless request of a new client is refused the same way.
    status, reply, _ = await post(proxy.url, discover("new-client"), **HEADERS_2026)
    assert status == 429 and reply["id"] == 1

    status, _, _ = await post(
        proxy.url, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, **{"Mcp-Session-Id": sessions[0]}
    )
    assert status == 200
    async with aiohttp.ClientSession() as client:
        async with client.delete(proxy.url, headers={"Mcp-Session-Id": sessions[0]}) as response:
            assert response.status == 204
    # One place left: clients without a session take turns in it, the least recently seen giving way ...
    for index in range(5):
        status, reply, _ = await post(proxy.url, discover(f"client-{index}", index), **HEADERS_2026)
        assert status == 200 and reply["id"] == index
    # ... and to a client that begins a session.
    status, _, headers = await post(proxy.url, INIT)
    assert status == 200 and headers["Mcp-Session-Id"]
