"""A handshake-era client (the official SDK's, ``mode="legacy"``) through the proxy to a 2026-07-28-only server."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.client.sse import sse_client

from tests.bridge.conftest import admin_get
from tests.bridge.rounds import legacy_round, resource_updates
from tests.bridge.test_modern_to_handshake import sampling, text_of
from tests.ops.helpers import scrape
from tests.streams.ws_transport import websocket_client
from tests.support import ProxyProcess

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_a_legacy_client_uses_a_modern_only_server(proxy: ProxyProcess) -> None:
    updated, on_message = resource_updates()
    async with Client(
        f"{proxy.base}/mcp/new", mode="legacy", sampling_callback=sampling, message_handler=on_message
    ) as client:
        # resources/subscribe becomes a subscriptions/listen stream upstream; its update reaches this session.
        await legacy_round(client, updated)
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
