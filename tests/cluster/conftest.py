"""Three proxy instances sharing a private Redis, for the cluster tests."""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer, RedisUnavailable, missing
from tests.support import ProxyProcess

NOTIFIER = Path(__file__).resolve().parent / "notifier.py"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    try:
        with RedisServer() as server:
            yield server
    except RedisUnavailable as exc:
        missing(exc)


def notifier_command() -> str:
    return shlex.join([sys.executable, str(NOTIFIER)])


@pytest.fixture
async def start_instances(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator:  # type: ignore[type-arg]
    """Start cluster instances named a, b, c... in front of ``upstream``; all are stopped after the test."""
    started: list[ProxyProcess] = []

    async def start(upstream: str | dict[str, str], count: int = 3, extra: str = "") -> list[ProxyProcess]:
        """``upstream``: one server's URL or command line, or several by name (each mounted at /mcp/<name>)."""
        servers = upstream if isinstance(upstream, dict) else {"default": upstream}
        upstreams = "".join(
            f"  {server}:\n    " + (f"url: {spec}" if "://" in spec else f"command: {spec!r}") + "\n"
            for server, spec in servers.items()
        )
        configs = []
        for _ in range(count):
            name = "abcdefgh"[len(started)]
            config = tmp_path / f"instance-{name}.yaml"
            config.write_text(
                f"store: {redis_server.url}\n"
                f"upstreams:\n{upstreams}"
                f"cluster:\n  instance_id: {name}\n  heartbeat_interval: 0.5\n  heartbeat_ttl: 3\n{extra}"
            )
            started.append(ProxyProcess(tmp_path / f"instance-{name}.log"))
            configs.append(config)
        mine = started[-count:]
        return list(await asyncio.gather(*(p.start("--config", str(c)) for p, c in zip(mine, configs, strict=True))))

    try:
        yield start
    finally:
        for proxy in started:
            await proxy.stop()
