"""The benchmark's fast MCP servers answer a real MCP SDK client, so the benchmark cannot rot."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPDeprecationWarning

FASTSERVER = Path(__file__).resolve().parents[1] / "benchmarks" / "fastserver.py"
TEXT = "0123456789abcdef" * 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_for_port(port: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(1000):
        if process.returncode is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"nothing listens on port {port}")


@contextlib.asynccontextmanager
async def http_server(mode: str) -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(sys.executable, str(FASTSERVER), mode, "--port", str(port))
    try:
        await wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        await process.wait()


@pytest.fixture(params=["http", "raw-http"])
async def http_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with http_server(request.param) as url:
        yield url


async def check_echo(client: Client) -> None:
    tools = await client.list_tools()
    assert [tool.name for tool in tools.tools] == ["echo"]
    result = await client.call_tool("echo", {"text": TEXT})
    assert not result.is_error
    assert result.content[0].text == TEXT
    if client.protocol_version != "2026-07-28":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)  # ping is deprecated, not gone, in 2025-11-25
            await client.send_ping()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_server_answers_the_sdk_client(mode: str) -> None:
    params = StdioServerParameters(command=sys.executable, args=[str(FASTSERVER), "stdio"])
    async with asyncio.timeout(30), Client(params, mode=mode) as client:
        assert client.server_info is not None
        assert client.server_info.name == "shadowproxy-bench-echo"
        assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        await check_echo(client)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_http_server_answers_the_sdk_client(http_url: str, mode: str) -> None:
    async with asyncio.timeout(30), Client(http_url, mode=mode) as client:
        assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        await check_echo(client)


async def test_stdio_server_reports_bad_input_precisely() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(FASTSERVER), "stdio", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    bad_tool = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "nope", "arguments": {}}}
    process.stdin.write(b"{not json\n" + orjson.dumps(bad_tool) + b"\n")
    process.stdin.write(b'{"jsonrpc":"2.0","id":3,"method":"no/such"}\n')
    await process.stdin.drain()
    async with asyncio.timeout(10):
        replies = [orjson.loads(await process.stdout.readline()) for _ in range(3)]
    process.stdin.close()
    async with asyncio.timeout(10):
        assert await process.wait() == 0
    assert [(reply["id"], reply["error"]["code"]) for reply in replies] == [(None, -32700), (2, -32602), (3, -32601)]
    assert "nope" in replies[1]["error"]["message"]


async def test_http_server_answers_an_unknown_session_with_404() -> None:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    async with http_server("http") as url, aiohttp.ClientSession() as http:
        async with http.post(url, data=body, headers={"Mcp-Session-Id": "nope"}) as response:
            assert response.status == 404
        async with http.post(url, data=b"{not json") as response:
            assert response.status == 200
            assert (await response.json())["error"]["code"] == -32700
