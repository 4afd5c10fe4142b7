from __future__ import annotations

import shlex
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import mcp.client.session
import pytest

from tests.redis_server import RedisServer, RedisUnavailable, missing
from tests.support import HttpServerProcess, ProxyProcess, sdk_server_command

# The SDK client takes the handshake era when server/discover is unanswered for 10 s; through the proxy the first
# request starts the upstream's process, which on a loaded two-core machine can take that long.
mcp.client.session.DISCOVER_TIMEOUT_SECONDS = 60.0


@pytest.fixture
async def http_server(tmp_path: Path) -> AsyncIterator[HttpServerProcess]:
    server = HttpServerProcess(tmp_path / "server.log")
    try:
        yield await server.start()
    finally:
        await server.stop()


@pytest.fixture
async def start_proxy(tmp_path: Path) -> AsyncIterator:  # type: ignore[type-arg]
    """Start proxies with given CLI arguments; all are stopped after the test."""
    started: list[ProxyProcess] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> ProxyProcess:
        proxy = ProxyProcess(tmp_path / f"proxy-{len(started)}.log")
        started.append(proxy)
        return await proxy.start(*args, env=env)

    try:
        yield start
    finally:
        for proxy in started:
            await proxy.stop()


@pytest.fixture
async def stdio_proxy(start_proxy) -> ProxyProcess:  # type: ignore[no-untyped-def]
    """The proxy in front of the SDK test server over stdio."""
    return await start_proxy("--upstream", shlex.join(sdk_server_command()))


@pytest.fixture
async def http_proxy(start_proxy, http_server: HttpServerProcess) -> ProxyProcess:  # type: ignore[no-untyped-def]
    """The proxy in front of the SDK test server over Streamable HTTP."""
    return await start_proxy("--upstream", http_server.url)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A private Redis server's URL; skipped without Redis, failed under SHADOWPROXY_REQUIRE_REDIS=1."""
    try:
        with RedisServer() as server:
            yield server.url
    except RedisUnavailable as exc:
        missing(exc)
