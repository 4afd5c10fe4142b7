"""Members that speak only one era, in a virtual server: each is met through its era bridge, as on its own mount.

A server written before 2026-07-28 (``handshake_only.py``) serves a 2026-07-28 client of the aggregate, and a
2026-07-28-only server (``modern_only.py``) a handshake-era one; before, the first was left out of a 2026-07-28
client's lists (it refuses ``server/discover``) and the second of a handshake client's (it refuses ``initialize``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from mcp.client import Client

from tests.support import REPO, ProxyProcess
from tests.test_proxy_http import ERAS, text_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVERS = REPO / "tests" / "servers"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProxyProcess]:
    folder = tmp_path_factory.mktemp("eras")
    (folder / "sp.yaml").write_text(
        f"""
upstreams:
  old: {{command: "{sys.executable} {SERVERS / "handshake_only.py"}", share: true}}
  new: {{command: "{sys.executable} {SERVERS / "modern_only.py"}"}}
virtual_servers:
  both:
    upstreams: [old, new]
    join_timeout: 60
"""
    )
    started = ProxyProcess(folder / "proxy.log")
    try:
        yield await started.start("--config", str(folder / "sp.yaml"))
    finally:
        await started.stop()


@pytest.mark.parametrize("mode", ERAS)
async def test_each_member_serves_either_era(proxy: ProxyProcess, mode: str) -> None:
    async with Client(f"{proxy.base}/mcp/both", mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools(cache_mode="bypass")).tools}
        assert {"old__echo", "new__echo"} <= names
        assert text_of(await client.call_tool("old__echo", {"text": f"old in {mode}"})) == f"old in {mode}"
        assert text_of(await client.call_tool("new__echo", {"text": f"new in {mode}"})) == f"new in {mode}"
