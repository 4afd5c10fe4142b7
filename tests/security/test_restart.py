"""Session binding survives a restart: a session restored from the store still belongs to its principal."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.support import ProxyProcess

from .helpers import PING, bearer, open_session, post, start_with_auth, write_config
from .keys import sha256

ALICE, BOB = "alice-token", "bob-token"
TOKENS = {"tokens": [{"name": "alice", "sha256": sha256(ALICE)}, {"name": "bob", "sha256": sha256(BOB)}]}


async def restarted(start_proxy, tmp_path: Path) -> tuple[ProxyProcess, str]:  # type: ignore[no-untyped-def]
    """A session alice opened on a proxy that has since been restarted on the same store."""
    config = write_config(tmp_path / "sp.yaml", TOKENS)
    store = f"sqlite:///{tmp_path / 'sessions.db'}"
    first = await start_with_auth(start_proxy, config, "--store", store)
    session = await open_session(first.url, **bearer(ALICE))
    await first.stop()
    assert first.proc is not None and first.proc.returncode == 0
    return await start_with_auth(start_proxy, config, "--store", store), session


async def live_sessions(proxy: ProxyProcess) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/readyz") as response:
        return (await response.json())["sessions"]  # type: ignore[no-any-return]


async def test_a_restored_session_is_still_bound(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy, session = await restarted(start_proxy, tmp_path)
    status, _, _ = await post(proxy.url, PING, **{"Mcp-Session-Id": session, **bearer(BOB)})
    assert status == 404
    status, _, _ = await post(proxy.url, PING, **{"Mcp-Session-Id": session})
    assert status == 401
    status, payload, _ = await post(proxy.url, PING, **{"Mcp-Session-Id": session, **bearer(ALICE)})
    assert status == 200 and payload["result"] == {}


async def test_another_principal_cannot_make_the_proxy_restore_a_session(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy, session = await restarted(start_proxy, tmp_path)
    status, _, _ = await post(proxy.url, PING, **{"Mcp-Session-Id": session, **bearer(BOB)})
    assert status == 404
    assert await live_sessions(proxy) == 0
