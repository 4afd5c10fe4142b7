"""A session whose server process died ends with it: the client is told 404 and starts a new one."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.security.helpers import open_session, post
from tests.support import ProxyProcess, sdk_server_command, until

CRASH = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "crash", "arguments": {}}}
LIST = {"jsonrpc": "2.0", "id": 6, "method": "tools/list"}


async def crashed_then_gone(proxy: ProxyProcess) -> None:
    session = {"Mcp-Session-Id": await open_session(proxy.url), "MCP-Protocol-Version": "2025-11-25"}
    status, reply, _ = await post(proxy.url, CRASH, **session)
    assert status == 502 and reply["error"]["code"] == -32000 and "exited" in reply["error"]["message"]
    status, reply, _ = await post(proxy.url, LIST, **session)
    assert status == 404 and reply["error"]["code"] == -32003 and reply["id"] == 6
    # Ended, not failing: it stays gone, and a new session gets a new process.
    status, _, _ = await post(proxy.url, LIST, **session)
    assert status == 404
    fresh = {"Mcp-Session-Id": await open_session(proxy.url), "MCP-Protocol-Version": "2025-11-25"}
    status, reply, _ = await post(proxy.url, LIST, **fresh)
    assert status == 200 and any(tool["name"] == "echo" for tool in reply["result"]["tools"])


async def test_the_session_of_a_crashed_child_gets_404(stdio_proxy: ProxyProcess) -> None:
    await crashed_then_gone(stdio_proxy)


async def test_the_sessions_of_a_crashed_shared_child_get_404(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "sp.yaml"
    config.write_text(f"upstreams:\n  shared:\n    command: {shlex.join(sdk_server_command())}\n    share: true\n")
    proxy = await start_proxy("--config", str(config))
    other = {"Mcp-Session-Id": await open_session(proxy.url), "MCP-Protocol-Version": "2025-11-25"}
    await crashed_then_gone(proxy)
    # A session that lived in the process that died is over too, though it sent nothing when it died.
    status, _, _ = await post(proxy.url, LIST, **other)
    assert status == 404


async def test_an_sdk_client_is_told_its_session_ended(stdio_proxy: ProxyProcess) -> None:
    async with Client(stdio_proxy.url, mode="legacy") as client:
        with pytest.raises(MCPError, match="exited"):
            await client.call_tool("crash", {})
        await until(lambda: "exited with code 3" in stdio_proxy.log(), "the exit to be logged")
        with pytest.raises(MCPError) as ended:
            await client.list_tools()
        assert ended.value.error.code in (-32003, 404) or "ession" in ended.value.error.message
