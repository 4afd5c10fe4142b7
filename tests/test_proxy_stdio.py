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


async def test_the_session_counts_every_message_and_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mcp.shared.exceptions import MCPError

    from shadowproxy.stores import open_store

    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    async with Client(proxy_params("--store", url, "--", *sdk_server_command()), mode="legacy") as client:
        for text in ("a", "b", "c"):
            await client.call_tool("echo", {"text": text})
        with pytest.raises(MCPError):
            await client.read_resource("test://nowhere")
    store = open_store(url)
    try:
        (record,), _ = await store.list()
    finally:
        await store.close()
    # Every message once, counted in the pipe callbacks or by the task alike: initialize and its reply, the
    # initialized notification, the client's tools/list and its reply, three calls and their replies, the read
    # and its error reply, which is the one error.
    assert record.errors == 1
    assert record.messages == 13, record.messages
