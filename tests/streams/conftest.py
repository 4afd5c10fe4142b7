"""Servers for the stream tests: the SDK test server over legacy SSE and WebSocket, and an in-process proxy."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from shadowproxy.config import Config, UpstreamConfig
from shadowproxy.fronts import legacy_sse
from shadowproxy.fronts import websocket as websocket_front
from shadowproxy.proxy.proxy import Proxy
from tests.support import REPO, Process, free_port, sdk_server_command, until

FLOOD = REPO / "tests" / "streams" / "flood_server.py"
BUFFER = 256 * 1024


class ServerProcess(Process):
    """A test server on a free port; ``url`` is where the proxy reaches it."""

    url: str = ""

    async def start(self, argv: list[str], url: str, probe: str) -> ServerProcess:
        await self.spawn(*argv)
        self.url = url

        async def up() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"the server exited:\n{self.log()}")
            try:
                async with aiohttp.ClientSession() as client, client.get(probe) as _:
                    return True
            except aiohttp.ClientError:
                return False

        await until(up, f"the test server at {url}")
        return self


@pytest.fixture
async def sse_server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """The SDK test server over the 2024-11-05 HTTP+SSE transport."""
    port = free_port()
    server = ServerProcess(tmp_path / "sse-server.log")
    try:
        base = f"http://127.0.0.1:{port}"
        yield await server.start([*sdk_server_command(), "--sse", str(port)], f"{base}/sse", f"{base}/nothing")
    finally:
        await server.stop()


@pytest.fixture
async def ws_server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """The SDK test server over WebSocket."""
    port = free_port()
    server = ServerProcess(tmp_path / "ws-server.log")
    script = str(REPO / "tests" / "streams" / "ws_server.py")
    try:
        yield await server.start(
            [sys.executable, script, str(port)], f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}/"
        )
    finally:
        await server.stop()


@pytest.fixture
async def flood_proxy() -> AsyncIterator[tuple[Proxy, str]]:
    """The proxy in this process (its parts open to inspection), with a small send buffer, before a flood server."""
    upstream = UpstreamConfig(name="default", command=(sys.executable, str(FLOOD)))
    proxy = Proxy(Config(upstreams=(upstream,), stream_buffer=BUFFER))
    app = web.Application()
    websocket_front.add_routes(app, proxy)
    legacy_sse.add_routes(app, proxy)
    await proxy.start()
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield proxy, f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await proxy.stop()
