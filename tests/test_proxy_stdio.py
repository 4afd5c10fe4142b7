"""The SDK client launching ``shadowproxy stdio`` in place of its server: to a stdio child, and bridged to HTTP."""

from __future__ import annotations

import sys

import pytest
from mcp import Client, StdioServerParameters

from tests.support import REPO, HttpServerProcess, child_env, sdk_server_command
from tests.test_proxy_http import ERAS, exercise_client


def proxy_params(*args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "shadowproxy", "stdio", *args], env=child_env(), cwd=str(REPO)
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_stdio_to_stdio(mode: str) -> None:
    await exercise_client(proxy_params("--", *sdk_server_command()), mode)


@pytest.mark.parametrize("mode", ERAS)
async def test_stdio_to_http(http_server: HttpServerProcess, mode: str) -> None:
    await exercise_client(proxy_params("--upstream", http_server.url), mode)


async def test_upstream_crash_fails_the_waiting_request() -> None:
    async with Client(proxy_params("--", *sdk_server_command()), mode="legacy") as client:
        with pytest.raises(Exception, match="exited"):
            await client.call_tool("crash", {})
