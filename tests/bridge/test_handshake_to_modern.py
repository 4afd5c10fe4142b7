"""A handshake-era client (the official SDK's, ``mode="legacy"``) through the proxy to a 2026-07-28-only server."""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from tests.bridge.conftest import admin_get
from tests.bridge.rounds import legacy_round, resource_updates
from tests.bridge.test_modern_to_handshake import sampling, text_of
from tests.ops.helpers import scrape
from tests.streams.ws_transport import websocket_client
from tests.support import STARTUP, ProxyProcess

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_a_legacy_client_uses_a_modern_only_server(proxy: ProxyProcess) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    updated = asyncio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.set()

    async with Client(
        f"{proxy.base}/mcp/new", mode="legacy", sampling_callback=sampling, message_handler=on_message
    ) as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None and client.server_info.name == "modern-only"
        assert {"echo", "count", "ask"} <= {tool.name for tool in (await client.list_tools()).tools}
        assert text_of(await client.call_tool("echo", {"text": "hi"})) == "hi"
        result = await client.call_tool("count", {"steps": 2}, progress_callback=on_progress)
        assert text_of(result) == "counted 2" and progress == [1, 2]
        # The server's InputRequiredResult reaches this client as a sampling request; its answer completes the call.
        assert text_of(await client.call_tool("ask", {"question": "life"})) == "model said: answer to life"
        resource = await client.read_resource("test://static")
        assert resource.contents[0].text == "static text"  # type: ignore[union-attr]
        prompt = await client.get_prompt("greet", {"name": "Ada"})
        assert prompt.messages[0].content.text == "Hello, Ada!"  # type: ignore[union-attr]
        await client.send_ping()
        # resources/subscribe becomes a subscriptions/listen stream upstream; its update reaches this session.
        await client.subscribe_resource("test://static")
        assert text_of(await client.call_tool("touch", {"uri": "test://static"})) == "touched"
        await asyncio.wait_for(updated.wait(), STARTUP)
    upstreams: dict[str, Any] = {
        entry["name"]: entry for entry in (await admin_get(proxy.base, "/_shadowproxy/upstreams"))["upstreams"]
    }
    assert upstreams["new"]["bridge"]["handshake_clients_bridged"] is True
    assert upstreams["old"]["bridge"]["handshake_clients_bridged"] is not True
    samples = await scrape(proxy.base)
    labels = frozenset({("upstream", "new"), ("direction", "handshake_to_modern"), ("method", "tools/call")})
    assert samples[("shadowproxy_bridged_requests_total", labels)] >= 4


async def test_over_websocket_a_legacy_client_gets_the_server_request(proxy: ProxyProcess) -> None:
    url = proxy.base.replace("http://", "ws://") + "/mcp/new/ws"
    async with Client(websocket_client(url), mode="legacy", sampling_callback=sampling) as client:
        assert text_of(await client.call_tool("echo", {"text": "ws"})) == "ws"
        assert text_of(await client.call_tool("ask", {"question": "ws"})) == "model said: answer to ws"


async def test_over_legacy_sse_a_legacy_client_uses_a_modern_only_server(proxy: ProxyProcess) -> None:
    updated, on_message = resource_updates()
    transport = sse_client(f"{proxy.base}/mcp/new/sse")
    async with Client(transport, mode="legacy", sampling_callback=sampling, message_handler=on_message) as client:
        await legacy_round(client, updated)
