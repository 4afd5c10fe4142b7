"""Sessions survive a proxy restart with a SQLite or Redis store, for stdio and HTTP upstreams."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import aiohttp
import pytest
from mcp import Client

from tests.redis_server import RedisServer, RedisUnavailable, missing
from tests.support import HttpServerProcess, ProxyProcess, free_port, sdk_server_command, until


def text_of(result) -> str:  # type: ignore[no-untyped-def]
    return result.content[0].text  # type: ignore[no-any-return]


async def restart(start_proxy, proxy: ProxyProcess, *args: str) -> ProxyProcess:  # type: ignore[no-untyped-def]
    await proxy.stop()
    assert proxy.proc is not None and proxy.proc.returncode == 0
    return await start_proxy(*args)


async def carry_on(start_proxy, upstream: str, store: str) -> None:  # type: ignore[no-untyped-def]
    args = ("--port", str(free_port()), "--upstream", upstream, "--store", store)
    proxy = await start_proxy(*args)
    async with Client(proxy.url, mode="legacy") as client:
        assert text_of(await client.call_tool("echo", {"text": "before"})) == "before"
        first_pid = text_of(await client.call_tool("pid", {}))
        proxy = await restart(start_proxy, proxy, *args)
        assert text_of(await client.call_tool("echo", {"text": "after"})) == "after"
        assert "restored session" in proxy.log()
        if "://" not in upstream:
            # A new child, brought up to date by the replayed handshake.
            assert text_of(await client.call_tool("pid", {})) != first_pid


@pytest.mark.parametrize("upstream_kind", ["stdio", "http"])
async def test_sqlite(start_proxy, http_server: HttpServerProcess, tmp_path: Path, upstream_kind: str) -> None:  # type: ignore[no-untyped-def]
    upstream = shlex.join(sdk_server_command()) if upstream_kind == "stdio" else http_server.url
    await carry_on(start_proxy, upstream, f"sqlite:///{tmp_path / 'sessions.db'}")


@pytest.mark.parametrize("upstream_kind", ["stdio", "http"])
async def test_redis(start_proxy, http_server: HttpServerProcess, redis_url: str, upstream_kind: str) -> None:  # type: ignore[no-untyped-def]
    upstream = shlex.join(sdk_server_command()) if upstream_kind == "stdio" else http_server.url
    await carry_on(start_proxy, upstream, redis_url)


async def test_memory_store_forgets_and_says_404(start_proxy) -> None:  # type: ignore[no-untyped-def]
    args = ("--port", str(free_port()), "--upstream", shlex.join(sdk_server_command()))
    proxy = await start_proxy(*args)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}
    async with aiohttp.ClientSession() as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
        async with client.post(proxy.url, json=body, headers=headers) as response:
            headers["Mcp-Session-Id"] = response.headers["Mcp-Session-Id"]
        proxy = await restart(start_proxy, proxy, *args)
        async with client.post(proxy.url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=headers) as r:
            assert r.status == 404


async def test_idle_sessions_expire_to_404(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = f"sqlite:///{tmp_path / 'ttl.db'}"
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--store", store, "--session-ttl", "1")
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}
    async with aiohttp.ClientSession() as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
        async with client.post(proxy.url, json=body, headers=headers) as response:
            headers["Mcp-Session-Id"] = response.headers["Mcp-Session-Id"]

        async def swept() -> bool:
            async with client.get(f"{proxy.base}/readyz") as response:
                return (await response.json())["sessions"] == 0

        await until(swept, "the idle session to expire")
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        async with client.post(proxy.url, json=ping, headers=headers) as response:
            assert response.status == 404


async def test_a_session_in_use_is_not_idle_however_long_its_call_takes(start_proxy) -> None:  # type: ignore[no-untyped-def]
    """A call that outlasts session_ttl (or an initialize slower than it, on a loaded machine) keeps its session."""
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--session-ttl", "1")
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}
    async with aiohttp.ClientSession() as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
        async with client.post(proxy.url, json=body, headers=headers) as response:
            assert response.status == 200
            headers["Mcp-Session-Id"] = response.headers["Mcp-Session-Id"]
        slow = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "slow", "arguments": {"seconds": 3}},
        }
        async with client.post(proxy.url, json=slow, headers=headers) as response:
            assert response.status == 200 and "slept 3" in await response.text()
        ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
        async with client.post(proxy.url, json=ping, headers=headers) as response:
            assert response.status == 200
        await asyncio.sleep(2.5)  # idle now for longer than its ttl
        async with client.post(proxy.url, json=ping, headers=headers) as response:
            assert response.status == 404


async def test_redis_killed_mid_session(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The proxy serves on while Redis is down; once it is back, every change made meanwhile is in Redis."""
    from shadowproxy.stores import open_store

    try:
        server = RedisServer().start()
    except RedisUnavailable as exc:
        missing(exc)
    try:
        proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--store", server.url)
        async with Client(proxy.url, mode="legacy") as client:
            assert text_of(await client.call_tool("echo", {"text": "up"})) == "up"
            server.kill()
            for index in range(5):
                assert text_of(await client.call_tool("echo", {"text": f"down {index}"})) == f"down {index}"
            async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/readyz") as response:
                count = (await response.json())["sessions"]
            assert count == 1
            server.start()
            store = open_store(server.url)
            try:

                async def caught_up() -> bool:
                    records, _ = await store.list()
                    return bool(records) and records[0].messages >= 14

                await until(caught_up, "the changes made while Redis was down to reach it")
            finally:
                await store.close()
    finally:
        server.stop()
