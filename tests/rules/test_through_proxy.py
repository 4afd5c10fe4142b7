"""The rules interceptor inside the real proxy, driven by the SDK client, in both protocol eras."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.support import REPO, child_env, sdk_server_command

from .helpers import write

ERAS = ["legacy", "2026-07-28"]

POLICY = """
rules:
  - id: no-crash
    match: {direction: client_to_server, tool: [crash, fail]}
    action: {block: {message: "this tool is disabled by policy"}}
  - id: mock-pid
    match: {direction: client_to_server, tool: pid}
    action: {respond: {result: {content: [{type: text, text: "4242"}], structuredContent: {result: 4242}}}}
  - id: mask-results
    priority: 10
    match: {direction: server_to_client, tool: echo}
    action: redact
"""


@pytest.mark.parametrize("mode", ERAS)
async def test_policy_through_the_proxy(start_proxy, tmp_path: Path, mode: str) -> None:  # type: ignore[no-untyped-def]
    policy = write(tmp_path / "policy.yaml", POLICY)
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--rules", str(policy))
    async with Client(proxy.url, mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "echo" in names and "pid" in names
        assert not names & {"crash", "fail"}, "blocked tools are not offered"
        await obeys_policy(client)


async def obeys_policy(client: Client) -> None:
    # Twice each: the second time the rules know each message's key, and decline what they would not touch.
    for _ in range(2):
        with pytest.raises(MCPError) as caught:
            await client.call_tool("fail", {"reason": "x"})
        assert caught.value.error.code == -32010
        assert caught.value.error.message == "this tool is disabled by policy"
        echoed = await client.call_tool("echo", {"text": "mail jane@example.com"})
        assert echoed.content[0].text == "mail [REDACTED:email]"  # type: ignore[union-attr]
        mocked = await client.call_tool("pid", {})
        assert mocked.content[0].text == "4242"  # type: ignore[union-attr]
        untouched = await client.call_tool("slow", {"seconds": 0})
        assert untouched.content[0].text == "slept 0.0"  # type: ignore[union-attr]


async def test_policy_through_the_stdio_front(tmp_path: Path) -> None:
    """The stdio front forwards what the chain declines in the pipe callback; the rest still meets the rules."""
    policy = write(tmp_path / "policy.yaml", POLICY)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "shadowproxy", "stdio", "--rules", str(policy), "--", *sdk_server_command()],
        env=child_env(),
        cwd=str(REPO),
    )
    async with Client(params, mode="legacy") as client:
        await obeys_policy(client)
