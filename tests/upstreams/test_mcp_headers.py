"""A body the proxy changed goes to an HTTP upstream with its routing headers made from it (SEP-2243).

The upstream is an SDK server whose tool marks ``region`` with ``x-mcp-header: Region``: it refuses (-32020) a
2026-07-28 call whose ``Mcp-Name`` or ``Mcp-Param-Region`` differs from the body. Three ways the body changes on
the way: a rule's ``modify`` (the client's headers name the old value), a virtual server's names (the client's
``Mcp-Name`` is the namespaced one), the era bridge's envelope (a handshake-era client sends no such headers).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from mcp.client import Client

from tests.streams.conftest import ServerProcess
from tests.support import REPO, ProxyProcess, free_port
from tests.test_proxy_http import text_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEADERS_SERVER = REPO / "tests" / "streams" / "headers_server.py"
MODERN = "2026-07-28"
RULES = """
rules:
  - id: move-region
    match: {direction: client_to_server, method: tools/call, upstream: plain, tool: where}
    action: {modify: {set: {params.arguments.region: "eu-central é"}}}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProxyProcess]:
    folder: Path = tmp_path_factory.mktemp("headers")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess(folder / "server.log")
    await server.start([sys.executable, str(HEADERS_SERVER), str(port)], f"{base}/mcp", f"{base}/")
    (folder / "rules.yaml").write_text(RULES)
    (folder / "shadowproxy.yaml").write_text(
        f"""
upstreams:
  plain: {{url: "{server.url}"}}
  bridged: {{url: "{server.url}", era: modern}}
virtual_servers:
  both:
    upstreams: [plain]
"""
    )
    started = ProxyProcess(folder / "proxy.log")
    try:
        await started.start("--config", str(folder / "shadowproxy.yaml"), "--rules", str(folder / "rules.yaml"))
        yield started
    finally:
        await started.stop()
        await server.stop()


async def test_a_modified_argument_gets_its_param_header(proxy: ProxyProcess) -> None:
    """The client's ``Mcp-Param-Region: eu`` would contradict the modified body."""
    async with Client(f"{proxy.base}/mcp/plain", mode=MODERN) as client:
        await client.list_tools()
        assert text_of(await client.call_tool("where", {"region": "eu"})) == "region eu-central é"


@pytest.mark.parametrize("mode", [MODERN, "legacy"])
async def test_a_virtual_servers_member_gets_its_own_names(proxy: ProxyProcess, mode: str) -> None:
    async with Client(f"{proxy.base}/mcp/both", mode=mode) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert names == ["plain__where"]
        assert text_of(await client.call_tool("plain__where", {"region": "ap-south"})) == "region ap-south"


async def test_the_bridges_envelope_gets_the_headers(proxy: ProxyProcess) -> None:
    """A handshake-era client in front of a server taken as 2026-07-28 only: the bridge makes the request."""
    async with Client(f"{proxy.base}/mcp/bridged", mode="legacy") as client:
        await client.list_tools()
        assert text_of(await client.call_tool("where", {"region": "us-east ü"})) == "region us-east ü"
