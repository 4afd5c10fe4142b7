"""A 2026-07-28 client (the official SDK's) through the proxy to a server that speaks only the handshake era."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.subscriptions import ToolsListChanged

from tests.support import REPO, STARTUP, ProxyProcess, until

HANDSHAKE_ONLY = [sys.executable, str(REPO / "tests" / "servers" / "handshake_only.py")]


def text_of(result: Any) -> str:
    return result.content[0].text


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    question = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"answer to {question}"), model="test"
    )


async def test_a_modern_client_uses_a_handshake_only_server(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--upstream", shlex.join(HANDSHAKE_ONLY))
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(proxy.url, mode="2026-07-28", sampling_callback=sampling) as client:
        discovered = types.DiscoverResult.model_validate(await client.session.send_discover("2026-07-28"))
        assert discovered.supported_versions == ["2026-07-28"]
        assert discovered.capabilities.tools is not None
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "progress", "ask"} <= tools
        assert text_of(await client.call_tool("echo", {"text": "hello"})) == "hello"
        result = await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
        assert text_of(result) == "done 3" and progress == [1, 2, 3]
        answer = await client.call_tool("ask", {"question": "life"})
        assert text_of(answer) == "model said: answer to life"
        resource = await client.read_resource("test://static")
        assert resource.contents[0].text == "static text"  # type: ignore[union-attr]


async def test_closing_the_stream_cancels_upstream_and_listen_hears_changes(start_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--upstream", shlex.join(HANDSHAKE_ONLY))
    marker = tmp_path / "cancelled"
    async with Client(proxy.url, mode="2026-07-28") as client:
        assert (await client.list_tools()).tools  # the upstream session is open: what follows is the call alone
        with anyio.move_on_after(1.0):
            await client.call_tool("until_cancelled", {"marker": str(marker)})
        await until(marker.exists, "the server to see the cancellation")

        async with client.listen(tools_list_changed=True) as subscription:
            assert subscription.honored.tools_list_changed is True
            assert text_of(await client.call_tool("changed", {"after": 0.1})) == "scheduled"
            with anyio.fail_after(STARTUP):
                event = await anext(aiter(subscription))
            assert isinstance(event, ToolsListChanged)
