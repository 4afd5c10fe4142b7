"""One proxy for the bridge tests of a module: started once, in front of the era-limited test servers."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
import yaml

from tests.ops.helpers import AUTH, TOKEN
from tests.support import REPO, Process, ProxyProcess, free_port, until

HANDSHAKE_ONLY = [sys.executable, str(REPO / "tests" / "servers" / "handshake_only.py")]
MODERN_ONLY = [sys.executable, str(REPO / "tests" / "servers" / "modern_only.py")]


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def proxy(tmp_path_factory: Any) -> AsyncIterator[ProxyProcess]:
    """Mounts: ``old`` (a handshake-only server, bridged when need be), ``off`` (the same, ``bridge: off``) and
    ``new`` (a server that speaks only 2026-07-28)."""
    tmp: Path = tmp_path_factory.mktemp("bridge")
    config = {
        "upstreams": {
            "old": {"command": HANDSHAKE_ONLY},
            "off": {"command": HANDSHAKE_ONLY, "bridge": "off"},
            "new": {"command": MODERN_ONLY},
        },
        "admin": {"token": TOKEN},
    }
    path = tmp / "shadowproxy.yaml"
    path.write_text(yaml.safe_dump(config))
    started = ProxyProcess(tmp / "proxy.log")
    try:
        yield await started.start("--config", str(path))
    finally:
        await started.stop()


async def admin_get(base: str, path: str) -> Any:
    async with aiohttp.ClientSession() as client, client.get(f"{base}{path}", headers=AUTH) as response:
        return await response.json()


class EraHttpServer(Process):
    """One of the era-limited test servers over Streamable HTTP, on a free port; ``url`` is its endpoint."""

    url: str = ""

    async def start(self, command: list[str]) -> EraHttpServer:
        port = free_port()
        await self.spawn(*command, "--http", str(port))
        self.url = f"http://127.0.0.1:{port}/mcp"
        await until(lambda: _listening(port, self), f"{command[-1]} over HTTP")
        return self


def _listening(port: int, server: Process) -> bool:
    assert server.proc is not None
    if server.proc.returncode is not None:
        raise AssertionError(f"the server exited:\n{server.log()}")
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def old_http(tmp_path_factory: Any) -> AsyncIterator[EraHttpServer]:
    """The handshake-only test server over Streamable HTTP."""
    server = EraHttpServer(tmp_path_factory.mktemp("old_http") / "server.log")
    try:
        yield await server.start(HANDSHAKE_ONLY)
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def new_http(tmp_path_factory: Any) -> AsyncIterator[EraHttpServer]:
    """The 2026-07-28-only test server over Streamable HTTP."""
    server = EraHttpServer(tmp_path_factory.mktemp("new_http") / "server.log")
    try:
        yield await server.start(MODERN_ONLY)
    finally:
        await server.stop()
