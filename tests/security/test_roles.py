"""Roles: static tokens and JWT claims get roles, calls outside them are refused naming the permission, lists
are cut to what each principal may use, and admin tokens get roles too. One proxy for the module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import yaml
from mcp.shared.exceptions import MCPError

from tests.ops.helpers import admin
from tests.support import ProxyProcess, sdk_server_command

from .helpers import client
from .keys import AUDIENCE, ISSUER, SigningKey, sha256, write_jwks

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = SigningKey("roles-key")
ADMIN_TOKEN = "full-admin-token-0123456789"
TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789", "ops": "ops-admin-token-0123456789"}
ALL_TOOLS = {"echo", "progress", "ask", "slow", "changed", "fail", "crash", "pid"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProxyProcess]:
    folder = tmp_path_factory.mktemp("roles")
    settings = {
        "upstreams": {"sdk": {"command": sdk_server_command(), "share": True}},
        "auth": {
            "tokens": [
                {"name": "alice", "sha256": sha256(TOKENS["alice"]), "roles": ["agent"]},
                {"name": "bob", "sha256": sha256(TOKENS["bob"]), "roles": ["echoer"]},
            ],
            "jwt": {"jwks_file": str(write_jwks(folder / "jwks.json", KEY)), "issuer": ISSUER, "audience": AUDIENCE},
        },
        "roles": {
            "default": "viewer",
            "claim": "groups",
            "claims": {"eng": ["agent"]},
            "define": {"echoer": {"extends": "viewer", "tools": {"sdk": ["echo"]}}},
        },
        "admin": {
            "token": ADMIN_TOKEN,
            "tokens": [{"name": "ops", "sha256": sha256(TOKENS["ops"]), "roles": ["operator"]}],
        },
    }
    config = folder / "sp.yaml"
    config.write_text(yaml.safe_dump(settings))
    process = ProxyProcess(folder / "proxy.log")
    try:
        yield await process.start("--config", str(config))
    finally:
        await process.stop()


async def tool_names(url: str, token: str) -> set[str]:
    async with client(url, token) as connected:
        return {tool.name for tool in (await connected.list_tools()).tools}


async def test_two_tokens_see_different_tools_and_one_is_refused_naming_the_permission(proxy: ProxyProcess) -> None:
    assert await tool_names(proxy.url, TOKENS["alice"]) == ALL_TOOLS
    async with client(proxy.url, TOKENS["bob"]) as bob:
        assert {tool.name for tool in (await bob.list_tools()).tools} == {"echo"}
        assert (await bob.call_tool("echo", {"text": "hi"})).content[0].text == "hi"  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="missing permission tool:sdk/pid") as refused:
            await bob.call_tool("pid", {})
        assert refused.value.error.code == -32010
        # The viewer role bob extends grants prompts.
        assert [prompt.name for prompt in (await bob.list_prompts()).prompts] == ["greet"]
    async with client(proxy.url, TOKENS["alice"]) as alice:
        assert isinstance((await alice.call_tool("pid", {})).content[0].text, str)  # type: ignore[union-attr]
    async with client(proxy.url, TOKENS["bob"], mode="2026-07-28") as stateless:
        assert {tool.name for tool in (await stateless.list_tools()).tools} == {"echo"}
        with pytest.raises(MCPError, match="missing permission tool:sdk/pid"):
            await stateless.call_tool("pid", {})


async def test_a_jwt_groups_claim_maps_to_a_role_and_no_group_gets_the_default(proxy: ProxyProcess) -> None:
    assert await tool_names(proxy.url, KEY.sign(sub="carol", groups=["eng"])) == ALL_TOOLS
    async with client(proxy.url, KEY.sign(sub="dave", groups=["sales"])) as dave:
        assert (await dave.list_tools()).tools == []
        with pytest.raises(MCPError, match=r"missing permission tool:sdk/echo.*roles: viewer"):
            await dave.call_tool("echo", {"text": "hi"})


async def test_an_operator_admin_token_may_approve_and_read_sessions_but_not_reload_rules(proxy: ProxyProcess) -> None:
    ops = {"Authorization": f"Bearer {TOKENS['ops']}"}
    status, body = await admin(proxy.base, "GET", "/sessions", ops)
    assert status == 200 and "sessions" in body
    status, _ = await admin(proxy.base, "GET", "/approvals", ops)
    assert status == 200
    status, body = await admin(proxy.base, "POST", "/rules/reload", ops)
    assert status == 403 and body["permission"] == "rules:reload" and "ops" in body["error"]
    status, _ = await admin(proxy.base, "POST", "/rules/reload", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200
    status, _ = await admin(proxy.base, "GET", "/sessions", {"Authorization": f"Bearer {TOKENS['alice']}"})
    assert status == 401, "a client token is no admin token"
