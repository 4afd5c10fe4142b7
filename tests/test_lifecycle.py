"""Shutdown, cancellation and upstream failure, with real processes and signals."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp
import orjson
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support import REPO, ProxyProcess, sdk_server_command, until

HOLDER = REPO / "tests" / "servers" / "holder.py"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def in_flight(proxy: ProxyProcess) -> int:
    async with aiohttp.ClientSession() as client, client.get(f"{proxy.base}/readyz") as response:
        return (await response.json())["in_flight"]  # type: ignore[no-any-return]


async def open_session(client: aiohttp.ClientSession, url: str) -> dict[str, str]:
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
    async with client.post(url, json=body, headers=HEADERS) as response:
        headers = {**HEADERS, "Mcp-Session-Id": response.headers["Mcp-Session-Id"]}
    async with client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers):
        return headers


async def slow_call(client: aiohttp.ClientSession, url: str, headers: dict[str, str], seconds: float) -> bytes:
    body = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "slow", "arguments": {"seconds": seconds}},
    }
    async with client.post(url, json=body, headers=headers) as response:
        return await response.read()


async def test_sigterm_lets_the_request_in_flight_finish(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", " ".join(sdk_server_command()))
    async with aiohttp.ClientSession() as client:
        headers = await open_session(client, proxy.url)
        call = asyncio.ensure_future(slow_call(client, proxy.url, headers, 1.0))  # noqa: TID251

        async def started() -> bool:
            return await in_flight(proxy) == 1

        await until(started, "the slow call to be in flight")
        proxy.signal(signal.SIGTERM)
        assert b"slept 1.0" in await call
    assert await proxy.wait() == 0
    assert "shutting down gracefully" in proxy.log()


async def test_second_signal_exits_at_once(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", " ".join(sdk_server_command()), "--shutdown-timeout", "60")
    async with aiohttp.ClientSession() as client:
        headers = await open_session(client, proxy.url)
        call = asyncio.ensure_future(slow_call(client, proxy.url, headers, 60))  # noqa: TID251

        async def started() -> bool:
            return await in_flight(proxy) == 1

        await until(started, "the slow call to be in flight")
        proxy.signal(signal.SIGTERM)
        await until(lambda: "shutting down gracefully" in proxy.log(), "the first signal to land")
        proxy.signal(signal.SIGTERM)
        assert await proxy.wait() == 130
        call.cancel()


async def hold_and_drop(proxy: ProxyProcess, headers: dict[str, str], body: dict[str, object], record) -> None:  # type: ignore[no-untyped-def]
    """Send a call the server holds, wait until the server has it, then close the connection under it."""
    before = record.read_text().count('"hold"') if record.exists() else 0
    client = aiohttp.ClientSession()
    post = asyncio.ensure_future(client.post(proxy.url, data=orjson.dumps(body), headers=headers))  # noqa: TID251
    await until(lambda: record.exists() and record.read_text().count('"hold"') > before, "the held call")
    post.cancel()
    await client.close()


async def test_closing_the_stream_cancels_only_in_2026(start_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "received.jsonl"
    proxy = await start_proxy("--upstream", f"env RECORD={record} {sys.executable} {HOLDER}")
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    modern = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "hold", "arguments": {}, "_meta": meta},
    }
    headers = {**HEADERS, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "hold"}
    await hold_and_drop(proxy, headers, modern, record)
    await until(lambda: "notifications/cancelled" in record.read_text(), "the cancellation to reach the server")
    cancelled = [orjson.loads(line) for line in record.read_text().splitlines() if "cancelled" in line]
    held = [orjson.loads(line) for line in record.read_text().splitlines() if '"hold"' in line]
    assert cancelled[0]["params"]["requestId"] == held[0]["id"]

    # Handshake era: a dropped connection is not cancellation.
    async with aiohttp.ClientSession() as client:
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
        async with client.post(proxy.url, json=body, headers=HEADERS) as response:
            session = response.headers["Mcp-Session-Id"]
    old = {**HEADERS, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    call = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "hold", "arguments": {}}}
    await hold_and_drop(proxy, old, call, record)
    async with aiohttp.ClientSession() as client:
        ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
        async with client.post(proxy.url, json=ping, headers=old) as response:
            assert (await response.json())["result"] == {}
    assert record.read_text().count("notifications/cancelled") == 1


async def test_a_crashed_upstream_fails_its_request_and_the_next_session_works(stdio_proxy: ProxyProcess) -> None:
    async with Client(stdio_proxy.url, mode="legacy") as client:
        with pytest.raises(MCPError, match="exited") as crashed:
            await client.call_tool("crash", {})
        assert crashed.value.error.code == -32000
    await until(lambda: "exited with code 3" in stdio_proxy.log(), "the exit to be logged")
    async with Client(stdio_proxy.url, mode="legacy") as client:
        assert (await client.call_tool("echo", {"text": "again"})).content[0].text == "again"  # type: ignore[union-attr]


async def test_sighup_reloads_the_rules(start_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - id: allow-all\n    match: {}\n    action: allow\n")
    config = tmp_path / "shadowproxy.yaml"
    config.write_text(f"interceptors:\n  - name: rules\n    options: {{paths: [{policy}], watch: false}}\n")
    proxy = await start_proxy("--config", str(config), "--upstream", " ".join(sdk_server_command()))
    async with Client(proxy.url, mode="legacy") as client:
        assert (await client.call_tool("echo", {"text": "a"})).content[0].text == "a"  # type: ignore[union-attr]
        policy.write_text("rules:\n  - id: no-echo\n    match: {tool: echo}\n    action: block\n")
        proxy.signal(signal.SIGHUP)

        async def blocked() -> bool:
            try:
                await client.call_tool("echo", {"text": "b"})
            except MCPError as exc:
                return exc.error.code == -32010
            return False

        await until(blocked, "the new rules to apply")


async def test_a_silent_answer_streams_keepalives(start_proxy) -> None:  # type: ignore[no-untyped-def]
    quiet = await start_proxy(
        "--upstream", " ".join(sdk_server_command()), "--request-timeout", "30", "--keepalive-interval", "0.2"
    )
    async with aiohttp.ClientSession() as client:
        headers = await open_session(client, quiet.url)
        body = {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "slow", "arguments": {"seconds": 1}},
        }
        async with client.post(quiet.url, json=body, headers=headers) as response:
            assert response.content_type == "text/event-stream"
            raw = await response.read()
    assert b": keep-alive" in raw
    assert b'"slept 1' in raw
