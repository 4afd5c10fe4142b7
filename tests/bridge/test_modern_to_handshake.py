"""A 2026-07-28 client (the official SDK's) through the proxy to a server that speaks only the handshake era."""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.subscriptions import ToolsListChanged
from mcp.shared.exceptions import MCPError

from shadowproxy.core.tasks import spawn
from tests.bridge.conftest import admin_get
from tests.bridge.rounds import modern_cancel_and_listen, modern_round
from tests.ops.helpers import AUTH
from tests.support import STARTUP, ProxyProcess, until
from tests.test_proxy_http import text_of

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    question = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"answer to {question}"), model="test"
    )


async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def tap_events(base: str, into: list[dict[str, Any]], ready: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as client, client.get(f"{base}/_shadowproxy/tap", headers=AUTH) as response:
        ready.set()
        async for line in response.content:
            if line.startswith(b"data: "):
                into.append(json.loads(line[6:]))


async def test_discover_lists_calls_progress_and_sampling(proxy: ProxyProcess) -> None:
    events: list[dict[str, Any]] = []
    ready = asyncio.Event()
    tap = spawn(tap_events(proxy.base, events, ready), name="tap-reader")
    await ready.wait()
    try:
        async with Client(
            f"{proxy.base}/mcp/old", mode="2026-07-28", sampling_callback=sampling, elicitation_callback=elicitation
        ) as client:
            # First: the bridge finds out the server's era and opens its session (a slow start under load).
            await modern_round(client)
        await until(lambda: any(e["method"] == "prompts/get" and e["kind"] == "response" for e in events), "tap")
    finally:
        tap.cancel()
        with suppress(asyncio.CancelledError):
            await tap
    asked = [e for e in events if e["method"] == "tools/call" and e["kind"] == "response"]
    assert asked and all(e.get("bridged") is True for e in asked)

    upstreams = {
        entry["name"]: entry for entry in (await admin_get(proxy.base, "/_shadowproxy/upstreams"))["upstreams"]
    }
    assert upstreams["old"]["bridge"]["bridged"] is True and upstreams["old"]["bridge"]["upstream_sessions"] == 1
    assert "bridge" not in upstreams["off"]
    ready_body = await admin_get(proxy.base, "/readyz")
    assert ready_body["upstreams"]["old"]["bridge"]["mode"] == "auto"


async def test_closing_the_stream_cancels_upstream_and_listen_hears_changes(
    proxy: ProxyProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "cancelled"
    async with Client(f"{proxy.base}/mcp/old", mode="2026-07-28") as client:
        assert (await client.list_tools()).tools  # the upstream session is open: what follows is the call alone
        await modern_cancel_and_listen(client, marker)


async def test_a_list_change_said_during_a_call_reaches_the_listen_stream(proxy: ProxyProcess) -> None:
    """Over stdio a handshake server's notification sent while a call is in flight arrives with that call; the
    bridge gives a list change to the listen streams, where a 2026-07-28 client hears of changes."""
    async with Client(f"{proxy.base}/mcp/old", mode="2026-07-28") as client:
        async with client.listen(tools_list_changed=True) as subscription:
            assert text_of(await client.call_tool("change_now", {})) == "changed"
            with anyio.fail_after(STARTUP):
                event = await anext(aiter(subscription))
            assert isinstance(event, ToolsListChanged)


async def test_bridge_off_passes_requests_untouched(proxy: ProxyProcess) -> None:
    async with Client(f"{proxy.base}/mcp/off", mode="2026-07-28") as client:
        with pytest.raises(MCPError):
            await client.list_tools()


def modern(request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "ws-client", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
    }
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": meta}}


async def test_over_websocket_a_server_request_is_an_input_required_result(proxy: ProxyProcess) -> None:
    url = proxy.base.replace("http://", "ws://") + "/mcp/old/ws"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=("mcp",)) as ws:

        async def ask(request: dict[str, Any]) -> dict[str, Any]:
            await ws.send_json(request)
            async with asyncio.timeout(STARTUP):
                while True:
                    reply = await ws.receive_json()
                    if reply.get("id") == request["id"]:
                        return reply

        discovered = await ask(modern(1, "server/discover", {}))
        assert discovered["result"]["supportedVersions"] == ["2026-07-28"]
        call = {"name": "ask", "arguments": {"question": "life"}}
        first = (await ask(modern(2, "tools/call", call)))["result"]
        assert first["resultType"] == "input_required"
        [(key, asked)] = first["inputRequests"].items()
        assert asked["method"] == "sampling/createMessage"
        answer = {"role": "assistant", "content": {"type": "text", "text": "42"}, "model": "test"}
        retry = {**call, "inputResponses": {key: answer}, "requestState": first["requestState"]}
        done = (await ask(modern(3, "tools/call", retry)))["result"]
        assert done["resultType"] == "complete" and done["content"][0]["text"] == "model said: 42"
        # The state was used up: a replay of it is refused.
        stale = await ask(modern(4, "tools/call", retry))
        assert stale["error"]["code"] == -32602
        # What 2026-07-28 removed is not found, as from a 2026-07-28 server, though the server behind would answer.
        assert (await ask(modern(5, "ping", {})))["error"]["code"] == -32601


async def test_over_legacy_sse_a_modern_client_reaches_the_handshake_server(proxy: ProxyProcess) -> None:
    transport = sse_client(f"{proxy.base}/mcp/old/sse")
    async with Client(transport, mode="2026-07-28", sampling_callback=sampling) as client:
        assert "echo" in {tool.name for tool in (await client.list_tools()).tools}
        assert text_of(await client.call_tool("ask", {"question": "sse"})) == "model said: answer to sse"
