"""The chain sees every message of a stream session, both ways: rules over legacy SSE and WebSocket."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError

from tests.streams.ws_transport import websocket_client
from tests.support import sdk_server_command
from tests.test_proxy_http import sampling, text_of

POLICY = """
rules:
  - id: no-fail
    match: {direction: client_to_server, tool: fail}
    action: {block: {message: "this tool is disabled by policy"}}
  - id: mock-pid
    match: {direction: client_to_server, tool: pid}
    action: {respond: {result: {content: [{type: text, text: "4242"}], structuredContent: {result: 4242}}}}
  - id: mask-results
    match: {direction: server_to_client, tool: echo}
    action: redact
  - id: no-sampling
    match: {direction: server_to_client, method: sampling/createMessage}
    action: {block: {message: "no sampling through this proxy"}}
"""


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_rules_judge_both_directions(start_proxy, tmp_path: Path, transport: str) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--rules", str(policy))
    server: Any
    if transport == "sse":
        server = sse_client(f"{proxy.base}/sse")
    else:
        server = websocket_client(proxy.base.replace("http://", "ws://") + "/ws")
    async with Client(server, mode="legacy", sampling_callback=sampling) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("fail", {"reason": "x"})
        assert caught.value.error.code == -32010
        assert caught.value.error.message == "this tool is disabled by policy"
        assert text_of(await client.call_tool("pid", {})) == "4242"
        assert text_of(await client.call_tool("echo", {"text": "mail jane@example.com"})) == "mail [REDACTED:email]"
        with pytest.raises(MCPError, match="no sampling through this proxy"):
            await client.call_tool("ask", {"question": "life"})
