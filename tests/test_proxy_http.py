"""The SDK client through the proxy's Streamable HTTP side, to stdio and HTTP upstreams, in both protocol eras."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support import ProxyProcess

ERAS = ["legacy", "2026-07-28"]


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"answer to {asked}"), model="test-model"
    )


def text_of(result: types.CallToolResult) -> str:
    return result.content[0].text  # type: ignore[union-attr]


async def exercise(url: str, mode: str) -> None:
    await exercise_client(url, mode)


async def exercise_client(server: Any, mode: str) -> None:
    """Everything a client does, checked against what the server really answers."""
    progress: list[tuple[float, float | None, str | None]] = []
    logs: list[Any] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async with Client(
        server, mode=mode, sampling_callback=sampling, logging_callback=on_log, log_level="info"
    ) as client:
        expected_version = "2026-07-28" if mode != "legacy" else "2025-11-25"
        assert client.protocol_version == expected_version
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "progress", "ask", "slow", "fail"} <= tools

        assert text_of(await client.call_tool("echo", {"text": "hello"})) == "hello"

        result = await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
        assert text_of(result) == "done 3"
        assert [step[0] for step in progress] == [1, 2, 3]
        assert progress[-1][2] == "step 3"
        assert logs == ["log 1", "log 2", "log 3"]

        failed = await client.call_tool("fail", {"reason": "kaboom"})
        assert failed.is_error and "fail" in text_of(failed)

        resource = await client.read_resource("test://static")
        assert resource.contents[0].text == "static text"  # type: ignore[union-attr]

        prompt = await client.get_prompt("greet", {"name": "Ada"})
        assert prompt.messages[0].content.text == "Hello, Ada!"  # type: ignore[union-attr]

        with pytest.raises(MCPError):
            await client.read_resource("test://missing")

        if mode == "legacy":
            await client.send_ping()
            answer = await client.call_tool("ask", {"question": "life"})
            assert text_of(answer) == "model said: answer to life"


@pytest.mark.parametrize("mode", ERAS)
async def test_stdio_upstream(stdio_proxy: ProxyProcess, mode: str) -> None:
    await exercise(stdio_proxy.url, mode)


@pytest.mark.parametrize("mode", ERAS)
async def test_http_upstream(http_proxy: ProxyProcess, mode: str) -> None:
    await exercise(http_proxy.url, mode)


async def test_each_session_gets_its_own_child(stdio_proxy: ProxyProcess) -> None:
    async with Client(stdio_proxy.url, mode="legacy") as first, Client(stdio_proxy.url, mode="legacy") as second:
        pid_first = text_of(await first.call_tool("pid", {}))
        pid_second = text_of(await second.call_tool("pid", {}))
        assert pid_first != pid_second
        assert text_of(await first.call_tool("pid", {})) == pid_first


async def test_shared_child_keeps_clients_apart(start_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support import sdk_server_command

    config = tmp_path / "shared.yaml"
    command = sdk_server_command()
    config.write_text(f"upstreams:\n  shared:\n    command: {command}\n    share: true\n")
    proxy = await start_proxy("--config", str(config))
    async with Client(proxy.url, mode="legacy") as first, Client(proxy.url, mode="legacy") as second:
        assert text_of(await first.call_tool("pid", {})) == text_of(await second.call_tool("pid", {}))
        # Both clients number their requests alike; the proxy must return each answer to its own client.
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        for index in range(5):
            assert text_of(await first.call_tool("echo", {"text": f"first {index}"})) == f"first {index}"
            assert text_of(await second.call_tool("echo", {"text": f"second {index}"})) == f"second {index}"
        await second.call_tool("progress", {"steps": 2}, progress_callback=on_progress)
        assert progress == [1, 2]
