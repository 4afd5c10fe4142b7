"""Replicas: ``urls`` of a Streamable HTTP server, ``replicas`` copies of a shared stdio server (issue 20, item 6).

New sessions are spread over the replicas, a session stays on its replica, and one that dies takes only its own
sessions with it. The SDK test server's ``pid`` tool says which process answered.
"""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import mcp_types as types
import pytest
from mcp.client import Client

from tests.ops.helpers import TOKEN as ADMIN_TOKEN
from tests.ops.helpers import admin
from tests.security.helpers import open_session, post
from tests.support import HttpServerProcess, ProxyProcess, sdk_server_command
from tests.test_proxy_http import text_of

PID = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "pid", "arguments": {}}}
CRASH = {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "crash", "arguments": {}}}
VERSION = {"MCP-Protocol-Version": "2025-11-25", "Accept": "application/json"}


async def pid_of(url: str, session: str) -> tuple[int, Any]:
    """The status of a ``pid`` call in ``session`` and the pid (or the error)."""
    status, reply, _ = await post(url, PID, **{"Mcp-Session-Id": session, **VERSION})
    if status != 200 or "result" not in reply:
        return status, reply
    return status, int(reply["result"]["content"][0]["text"])


async def sessions_by_pid(url: str, count: int) -> dict[int, list[str]]:
    spread: dict[int, list[str]] = {}
    for _ in range(count):
        session = await open_session(url)
        status, pid = await pid_of(url, session)
        assert status == 200, pid
        spread.setdefault(pid, []).append(session)
    return spread


async def readyz(proxy: ProxyProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/readyz") as response:
        return await response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[list[HttpServerProcess]]:
    servers = [HttpServerProcess(tmp_path / f"server-{index}.log") for index in range(2)]
    try:
        yield [await server.start() for server in servers]
    finally:
        for server in servers:
            await server.stop()


async def test_http_replicas(start_proxy, replicas: list[HttpServerProcess], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "sp.yaml"
    urls = ", ".join(f'"{server.url}"' for server in replicas)
    # No health checks: what the proxy knows of a replica down, it learns from a refused connection.
    config.write_text(
        f"upstreams:\n  spread: {{urls: [{urls}]}}\nhealth: {{interval: 0}}\nadmin: {{token: {ADMIN_TOKEN}}}\n"
    )
    proxy: ProxyProcess = await start_proxy("--config", str(config))
    spread = await sessions_by_pid(proxy.url, 4)
    assert sorted(len(sessions) for sessions in spread.values()) == [2, 2]
    for pid, sessions in spread.items():  # a session stays on its replica
        for session in sessions:
            assert await pid_of(proxy.url, session) == (200, pid)

    first = replicas[0].pid
    await replicas[0].stop()
    # Replica 0's turn comes next: the refused initialize goes on to replica 1, and so does the session after it.
    assert set(await sessions_by_pid(proxy.url, 2)) == {replicas[1].pid}
    for pid, sessions in spread.items():
        for session in sessions:
            status, answer = await pid_of(proxy.url, session)
            # Replica 0's sessions ended with it (404: their clients start new ones); replica 1's go on.
            if pid == first:
                assert status == 404, answer
            else:
                assert (status, answer) == (200, pid)
    report = await readyz(proxy)
    assert report["status"] == "ready"
    assert any("upstream spread: replica 0 down: connection refused" in line for line in report["problems"])
    status, upstreams = await admin(proxy.base, "GET", "/upstreams")
    entry = next(each for each in upstreams["upstreams"] if each["name"] == "spread")
    assert entry["replicas"] == 2 and entry["urls"] == [server.url for server in replicas]
    assert list(entry["replicas_down"]) == ["0"]
    # Stateless 2026-07-28 requests go to a live replica.
    async with Client(proxy.url, mode="2026-07-28") as client:
        for _ in range(3):
            assert text_of(await client.call_tool("echo", {"text": "up"})) == "up"


async def test_stdio_replicas(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "sp.yaml"
    command = shlex.join(sdk_server_command())
    config.write_text(
        f"upstreams:\n  copies: {{command: {command!r}, share: true, replicas: 3}}\nhealth: {{interval: 0}}\n"
    )
    proxy: ProxyProcess = await start_proxy("--config", str(config))
    spread = await sessions_by_pid(proxy.url, 6)
    assert sorted(len(sessions) for sessions in spread.values()) == [2, 2, 2]
    crashed, (victim, neighbour) = next(iter(spread.items()))
    status, _, _ = await post(proxy.url, CRASH, **{"Mcp-Session-Id": victim, **VERSION})
    assert status == 502
    # The crashed replica's sessions are over; the others' go on, on the same process.
    status, _ = await pid_of(proxy.url, neighbour)
    assert status == 404
    for pid, sessions in list(spread.items())[1:]:
        for session in sessions:
            assert await pid_of(proxy.url, session) == (200, pid)
    # The next sessions are spread again, the crashed replica started anew.
    fresh = await sessions_by_pid(proxy.url, 3)
    assert len(fresh) == 3 and crashed not in fresh
    # 2026-07-28 clients: a logical session each (one client name each), spread over stateless children of
    # their own, each staying on its own.
    stateless: dict[int, str] = {}
    for index in range(3):
        info = types.Implementation(name=f"client-{index}", version="1")
        async with Client(proxy.url, mode="2026-07-28", client_info=info) as client:
            pids = {text_of(await client.call_tool("pid", {})) for _ in range(2)}
            assert len(pids) == 1
            stateless[int(pids.pop())] = info.name
    assert len(stateless) == 3 and not set(stateless) & (set(spread) | set(fresh))
