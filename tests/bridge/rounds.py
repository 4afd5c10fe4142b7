"""What the official SDK client does through a bridge, each step checked: shared by the fronts and upstreams."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.subscriptions import ToolsListChanged

from tests.support import STARTUP, until
from tests.test_proxy_http import text_of


async def modern_round(client: Client) -> None:
    """A 2026-07-28 client and the handshake-only test server (``tests/servers/handshake_only.py``)."""
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    assert {"echo", "progress", "ask", "greet_me"} <= {tool.name for tool in (await client.list_tools()).tools}
    discovered = types.DiscoverResult.model_validate(await client.session.send_discover("2026-07-28"))
    assert discovered.supported_versions == ["2026-07-28"] and discovered.capabilities.tools is not None
    assert text_of(await client.call_tool("echo", {"text": "hello"})) == "hello"
    result = await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
    assert text_of(result) == "done 3" and progress == [1, 2, 3]
    # The server asks the client's model, then the user, during a call: each an InputRequiredResult and a retry.
    assert text_of(await client.call_tool("ask", {"question": "life"})) == "model said: answer to life"
    assert text_of(await client.call_tool("greet_me", {})) == "Hello, Ada!"
    resource = await client.read_resource("test://static")
    assert resource.contents[0].text == "static text"  # type: ignore[union-attr]
    prompt = await client.get_prompt("greet", {"name": "Ada"})
    assert prompt.messages[0].content.text == "Hello, Ada!"  # type: ignore[union-attr]


async def modern_cancel_and_listen(client: Client, marker: Path) -> None:
    """A 2026-07-28 client cancels a call (the server sees it cancelled) and hears a tools list change."""
    async with anyio.create_task_group() as group:
        group.start_soon(client.call_tool, "until_cancelled", {"marker": str(marker)})
        await until(marker.exists, "the server to start the call")
        group.cancel_scope.cancel()
    await until(lambda: marker.read_text() == "cancelled", "the server to see the cancellation")
    async with client.listen(tools_list_changed=True) as subscription:
        assert subscription.honored.tools_list_changed is True
        assert text_of(await client.call_tool("changed", {"after": 0.1})) == "scheduled"
        with anyio.fail_after(STARTUP):
            event = await anext(aiter(subscription))
        assert isinstance(event, ToolsListChanged)


def resource_updates() -> tuple[asyncio.Event, Any]:
    """An event set when a ``notifications/resources/updated`` arrives, and the client's message handler."""
    updated = asyncio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.set()

    return updated, on_message


async def legacy_round(client: Client, updated: asyncio.Event) -> None:
    """A handshake-era client and the 2026-07-28-only test server (``tests/servers/modern_only.py``)."""
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

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
    await client.subscribe_resource("test://static")
    assert text_of(await client.call_tool("touch", {"uri": "test://static"})) == "touched"
    await asyncio.wait_for(updated.wait(), STARTUP)
