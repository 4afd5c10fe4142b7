"""Static bearer tokens and API keys at the proxy's HTTP side, and sessions bound to the principal that made them."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from mcp.shared.exceptions import MCPError

from shadowproxy.core.errors import SESSION_NOT_FOUND
from shadowproxy.stores import open_store
from tests.support import until

from .helpers import INIT, PING, bearer, client, open_session, post, start_with_auth, write_config
from .keys import sha256

ALICE, BOB = "alice-secret-token", "bob-secret-token"
TOKENS = {"tokens": [{"name": "alice", "sha256": sha256(ALICE)}, {"name": "bob", "sha256": sha256(BOB)}]}


async def test_requests_without_a_valid_token_are_refused(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_with_auth(start_proxy, write_config(tmp_path / "sp.yaml", TOKENS))
    status, payload, headers = await post(proxy.url, INIT)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="shadowproxy"'
    assert payload["error"] == "unauthorized"
    status, payload, headers = await post(proxy.url, INIT, **bearer("not-a-token"))
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    status, payload, _ = await post(proxy.url, INIT, **bearer(ALICE.upper()))
    assert status == 401
    status, payload, _ = await post(proxy.url, INIT, Authorization=f"Basic {ALICE}")
    assert status == 400 and payload["error"] == "invalid_request"
    status, _, _ = await post(proxy.url, INIT, Authorization="Bearer ")
    assert status == 400
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/readyz"):
            async with http.get(proxy.base + path) as response:
                assert response.status == 200, path
        async with http.get(proxy.url, headers={"Accept": "text/event-stream"}) as response:
            assert response.status == 401
        async with http.delete(proxy.url, headers={"Mcp-Session-Id": "x"}) as response:
            assert response.status == 401
        async with http.get(proxy.base + "/metrics") as response:
            assert response.status == 401
        async with http.get(proxy.base + "/metrics", headers=bearer(ALICE)) as response:
            assert response.status == 200
        # Without auth.jwt there is no OAuth metadata to serve.
        async with http.get(proxy.base + "/.well-known/oauth-protected-resource/mcp") as response:
            assert response.status == 404
    assert ALICE not in proxy.log() and "not-a-token" not in proxy.log()


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_sdk_client_works_with_a_token(start_proxy, tmp_path: Path, mode: str) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_with_auth(start_proxy, write_config(tmp_path / "sp.yaml", TOKENS))
    async with client(proxy.url, ALICE, mode) as alice:
        result = await alice.call_tool("echo", {"text": "hi"})
        assert result.content[0].text == "hi"  # type: ignore[union-attr]


async def test_the_principal_is_recorded_on_the_session(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "sessions.db"
    config = write_config(tmp_path / "sp.yaml", TOKENS)
    proxy = await start_with_auth(start_proxy, config, "--store", f"sqlite:///{db}")
    session = await open_session(proxy.url, **bearer(ALICE))
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:

        async def recorded() -> bool:
            record = await store.get(session)
            return record is not None and record.principal == "alice"

        await until(recorded, "the session record with its principal")
    finally:
        await store.close()


async def test_a_session_is_bound_to_its_principal(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_with_auth(start_proxy, write_config(tmp_path / "sp.yaml", TOKENS))
    url = proxy.url
    session = await open_session(url, **bearer(ALICE))
    as_bob = {"Mcp-Session-Id": session, **bearer(BOB)}
    status, payload, _ = await post(url, PING, **as_bob)
    assert status == 404 and payload["error"]["code"] == SESSION_NOT_FOUND and payload["id"] == 2
    status, _, _ = await post(url, [PING, {**PING, "id": 3}], **as_bob)
    assert status == 404
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Accept": "text/event-stream", **as_bob}) as response:
            assert response.status == 404
        async with http.delete(url, headers=as_bob) as response:
            assert response.status == 404
    # No token at all is a 401, not a hint that the session exists.
    status, _, _ = await post(url, PING, **{"Mcp-Session-Id": session})
    assert status == 401
    # Alice's session is untouched by all of that.
    status, payload, _ = await post(url, PING, **{"Mcp-Session-Id": session, **bearer(ALICE)})
    assert status == 200 and payload["result"] == {}


async def test_tokens_file_and_api_key_header(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tokens.txt").write_text(f"# service keys\n\nbuild-bot:{sha256('k-123')}\n")
    proxy = await start_with_auth(start_proxy, write_config(tmp_path / "sp.yaml", {"tokens_file": "tokens.txt"}))
    session = await open_session(proxy.url, **{"X-API-Key": "k-123"})
    status, _, _ = await post(proxy.url, PING, **{"Mcp-Session-Id": session, **bearer("k-123")})
    assert status == 200, "the same principal may present its key either way"
    status, _, _ = await post(proxy.url, INIT, **{"X-API-Key": "k-124"})
    assert status == 401


POLICY = """
rules:
  - id: bob-may-not-echo
    match: {direction: client_to_server, tool: echo, principal: bob}
    action: {block: {message: "not for bob"}}
"""


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_interceptors_see_the_principal(start_proxy, tmp_path: Path, mode: str) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "policy.yaml").write_text(POLICY)
    config = write_config(tmp_path / "sp.yaml", TOKENS)
    proxy = await start_with_auth(start_proxy, config, "--rules", str(tmp_path / "policy.yaml"))
    async with client(proxy.url, ALICE, mode) as alice, client(proxy.url, BOB, mode) as bob:
        assert (await alice.call_tool("echo", {"text": "a"})).content[0].text == "a"  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="not for bob"):
            await bob.call_tool("echo", {"text": "b"})
