"""Interceptors that modify, block and answer messages in each direction, through the running proxy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.support import REPO, child_env, sdk_server_command

CONFIG = "interceptors:\n  - name: tests.interceptor_fixtures:create\n"


async def check(server: Any) -> None:
    logs: list[Any] = []
    progress: list[float] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(server, mode="legacy", logging_callback=on_log) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "echo" in names and "crash" not in names

        shout = await client.call_tool("echo", {"text": "shout"})
        assert shout.content[0].text == "SHOUT"  # type: ignore[union-attr]

        with pytest.raises(MCPError) as blocked:
            await client.call_tool("fail", {"reason": "x"})
        assert blocked.value.error.code == -32050

        mocked = await client.call_tool("mocked", {})
        assert mocked.content[0].text == "from the proxy"  # type: ignore[union-attr]

        with pytest.raises(MCPError) as broken:
            await client.call_tool("explode", {})
        assert broken.value.error.code == -32603

        with pytest.raises(MCPError) as secret:
            await client.call_tool("echo", {"text": "a secret"})
        assert secret.value.error.code == -32051

        done = await client.call_tool("progress", {"steps": 2}, progress_callback=on_progress)
        assert done.content[0].text == "done 2"  # type: ignore[union-attr]
        assert progress == [1, 2] and logs == []

        asked = await client.call_tool("ask", {"question": "q"})
        assert asked.content[0].text == "model said: canned"  # type: ignore[union-attr]

        after = await client.call_tool("echo", {"text": "still fine"})
        assert after.content[0].text == "still fine"  # type: ignore[union-attr]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "interceptors.yaml"
    path.write_text(CONFIG)
    return path


async def test_through_http(start_proxy, config_file: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--config", str(config_file), "--upstream", " ".join(sdk_server_command()))
    await check(proxy.url)
    assert "the interceptor broke" in proxy.log()


async def test_through_stdio(config_file: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "shadowproxy", "stdio", "--config", str(config_file), "--", *sdk_server_command()],
        env=child_env(),
        cwd=str(REPO),
    )
    await check(params)
