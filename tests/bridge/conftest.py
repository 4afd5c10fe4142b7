"""One proxy for the bridge tests of a module: started once, in front of the era-limited test servers."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
import yaml

from tests.ops.helpers import AUTH, TOKEN
from tests.support import REPO, ProxyProcess

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
