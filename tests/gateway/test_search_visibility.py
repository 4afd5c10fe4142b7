"""``search_tools`` finds only what the principal's ``tools/list`` would show (issue 20, item 4): a tool its roles
do not grant, one a rule hides and one the virtual server excludes are not found."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import yaml
from mcp.client import Client

from tests.security.helpers import client
from tests.security.keys import sha256
from tests.support import ProxyProcess, sdk_server_command

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789"}
RULES = """
rules:
  - id: no-slow
    match: {direction: client_to_server, method: tools/call, tool: "sdk__slow"}
    action: {block: {message: "slow tools are not allowed"}}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProxyProcess]:
    folder = tmp_path_factory.mktemp("search")
    settings = {
        "upstreams": {"sdk": {"command": sdk_server_command(), "share": True}},
        "virtual_servers": {
            "found": {"upstreams": ["sdk"], "discovery": "search", "tools": {"exclude": ["sdk__crash"]}},
        },
        "auth": {
            "tokens": [
                {"name": "alice", "sha256": sha256(TOKENS["alice"]), "roles": ["agent"]},
                {"name": "bob", "sha256": sha256(TOKENS["bob"]), "roles": ["echoer"]},
            ],
        },
        "roles": {
            "default": "viewer",
            "define": {
                "echoer": {"extends": "viewer", "tools": {"found": ["search_tools", "call_tool", "sdk__echo"]}},
            },
        },
    }
    (folder / "sp.yaml").write_text(yaml.safe_dump(settings))
    (folder / "rules.yaml").write_text(RULES)
    process = ProxyProcess(folder / "proxy.log")
    try:
        yield await process.start("--config", str(folder / "sp.yaml"), "--rules", str(folder / "rules.yaml"))
    finally:
        await process.stop()


async def found(connected: Client, query: str) -> list[str]:
    result = await connected.call_tool("search_tools", {"query": query, "detail": "name", "limit": 100})
    assert not result.is_error, result
    return [tool["name"] for tool in result.structured_content["tools"]]  # type: ignore[index]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_search_finds_only_what_the_principal_may_see(proxy: ProxyProcess, mode: str) -> None:
    url = f"{proxy.base}/mcp/found"
    async with client(url, TOKENS["alice"], mode) as alice:
        everything = await found(alice, "echo pid slow crash progress text seconds")
        assert {"sdk__echo", "sdk__pid", "sdk__progress"} <= set(everything)
        assert "sdk__slow" not in everything  # a rule blocks every call of it: hidden
        assert "sdk__crash" not in everything  # excluded by the virtual server
    async with client(url, TOKENS["bob"], mode) as bob:
        assert [tool.name for tool in (await bob.list_tools()).tools] == ["search_tools", "call_tool"]
        assert await found(bob, "echo pid slow crash progress text seconds") == ["sdk__echo"]
        assert await found(bob, "pid") == []
