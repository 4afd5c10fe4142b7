"""Per-principal upstream secrets kept encrypted in the store, seen by every instance on it (SQLite, Redis); and
a caller's credentials added on the instance that calls the upstream when its request was forwarded there.

Two proxy instances share one store. The upstream (written for the test) answers ``whoami`` with the
``Authorization`` header it got, and records every request's."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp import web
from cryptography.fernet import Fernet

from shadowproxy.upstreams.health import PING_ID
from tests.redis_server import RedisServer, RedisUnavailable, missing
from tests.support import ProxyProcess, until

from .helpers import INIT, bearer, open_session, post
from .keys import AUDIENCE, ISSUER, SigningKey, sha256, write_jwks
from .test_upstream_credentials import UPSTREAM_AUDIENCE, AuthorizationServer, serve

ADMIN = "shared-admin-token-0123"
TOKENS = {"alice": "alice-client-token-0123", "bob": "bob-client-token-0123"}
KEY = SigningKey("shared-credentials-key")


@dataclass
class Upstream:
    """An MCP server over Streamable HTTP with one tool, ``whoami``: the Authorization it was called with.

    ``seen`` holds the Authorization of every request but the health pings."""

    seen: list[str | None] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405)
        body = orjson.loads(await request.read())
        authorization = request.headers.get("Authorization")
        method = body.get("method")
        # The proxies' health pings carry no credentials and come when they come: ``seen[-1]`` is the last call's.
        if body.get("id") != PING_ID:
            self.seen.append(authorization)
        if "id" not in body:
            return web.Response(status=202)
        if method == "initialize":
            result: Any = {"protocolVersion": body["params"]["protocolVersion"], "capabilities": {"tools": {}},
                           "serverInfo": {"name": "whoami", "version": "1"}}  # fmt: skip
        elif method == "tools/list":
            result = {"tools": [{"name": "whoami", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": str(authorization)}]}
        else:
            result = {}
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, AuthorizationServer, str]]:
    server, authorization = Upstream(), AuthorizationServer()
    app = web.Application()
    app.router.add_route("*", "/{name}", server.handle)
    app.router.add_post("/as/token", authorization.token)
    runner, url = await serve(app)
    yield server, authorization, url
    await runner.cleanup()


@pytest.fixture
def redis_url() -> AsyncIterator[str]:
    try:
        with RedisServer() as server:
            yield server.url
    except RedisUnavailable as exc:
        missing(exc)


Start = Callable[[str, int], Awaitable[list[ProxyProcess]]]


@pytest.fixture
async def instances(tmp_path: Path, upstream: tuple[Upstream, AuthorizationServer, str]) -> AsyncIterator[Start]:
    """Start ``count`` instances on the store ``store``: upstreams ``keyed`` (per principal) and ``exchanged``
    (RFC 8693), and a virtual server of each (``vk``, ``vx``), whose sessions are forwarded to their owner."""
    url = upstream[2]
    started: list[ProxyProcess] = []
    (tmp_path / "key").write_text(Fernet.generate_key().decode())
    (tmp_path / "as-secret").write_text("as-client-secret")
    exchange = {"token_url": f"{url}/as/token", "client_id": "shadowproxy", "audience": UPSTREAM_AUDIENCE,
                "client_secret": {"file": "as-secret"}}  # fmt: skip

    async def start(store: str, count: int) -> list[ProxyProcess]:
        for name in "ab"[:count]:
            settings = {
                "store": store,
                "upstreams": {
                    "keyed": {"url": f"{url}/keyed", "credentials": {"per_principal": True}},
                    "exchanged": {"url": f"{url}/exchanged", "credentials": {"token_exchange": exchange}},
                },
                "virtual_servers": {"vk": {"upstreams": ["keyed"]}, "vx": {"upstreams": ["exchanged"]}},
                "auth": {
                    "tokens": [{"name": who, "sha256": sha256(token)} for who, token in TOKENS.items()],
                    "jwt": {"jwks_file": str(write_jwks(tmp_path / "jwks.json", KEY)), "issuer": ISSUER,
                            "audience": AUDIENCE},
                },
                "credentials": {"key_file": "key"},
                "admin": {"token": ADMIN},
                "cluster": {"instance_id": name, "heartbeat_interval": 0.5, "heartbeat_ttl": 3},
            }  # fmt: skip
            config = tmp_path / f"{name}.yaml"
            config.write_text(yaml.safe_dump(settings))
            started.append(await ProxyProcess(tmp_path / f"{name}.log").start("--config", str(config)))
        return started

    yield start
    await asyncio.gather(*(proxy.stop() for proxy in started))


async def change(proxy: ProxyProcess, principal: str, secret: str | None) -> int:
    url = f"{proxy.base}/_shadowproxy/credentials/keyed/{principal}"
    body = {"json": {"secret": secret}} if secret is not None else {}
    async with (
        aiohttp.ClientSession() as client,
        client.request("PUT" if secret else "DELETE", url, headers=bearer(ADMIN), **body) as response,
    ):
        return response.status


async def sent_as(proxy: ProxyProcess, token: str) -> str:
    """What the upstream ``keyed`` got as Authorization for a new session of ``token``, or the error."""
    status, body, _ = await post(f"{proxy.base}/mcp/keyed", INIT, **bearer(token))
    if "error" in body:
        return str(body["error"]["message"])
    assert status == 200
    return "sent"


async def stored_values(store: str, tmp_path: Path) -> dict[str, bytes]:
    """The secrets space as the store holds it, read without the proxy."""
    if store.startswith("sqlite"):
        with sqlite3.connect(tmp_path / "sessions.db") as db:
            rows = db.execute("SELECT key, value FROM entries WHERE space = 'upstream-secrets'").fetchall()
        return {key: bytes(value) for key, value in rows}
    client = aioredis.Redis.from_url(store)
    try:
        found = await client.hgetall("shadowproxy:entries:upstream-secrets")
    finally:
        await client.aclose()
    return {key.decode(): value for key, value in found.items()}


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_a_secret_set_on_one_instance_is_used_by_the_other(
    backend: str, tmp_path: Path, instances: Start, upstream: tuple[Upstream, AuthorizationServer, str],
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    store = f"sqlite:///{tmp_path / 'sessions.db'}" if backend == "sqlite" else request.getfixturevalue("redis_url")
    a, b = await instances(store, 2)
    server = upstream[0]

    assert "none is set" in await sent_as(b, TOKENS["alice"])
    assert await change(a, "alice", "alice-key-1") == 204
    assert await sent_as(b, TOKENS["alice"]) == "sent", "a secret set on a is read from the store by b"
    assert server.seen[-1] == "Bearer alice-key-1"
    assert "needs a credential for 'bob'" in await sent_as(b, TOKENS["bob"])

    stored = await stored_values(store, tmp_path)
    assert list(stored) == ['["keyed","alice"]']
    key = Fernet((tmp_path / "key").read_bytes())
    assert b"alice-key-1" not in stored['["keyed","alice"]'], "encrypted before it reached the store"
    assert key.decrypt(stored['["keyed","alice"]']) == b"alice-key-1"

    assert await change(b, "alice", None) == 204
    assert "none is set" in await sent_as(b, TOKENS["alice"])
    assert await change(b, "alice", None) == 404
    assert await stored_values(store, tmp_path) == {}


async def test_in_a_cluster_a_changed_secret_is_used_at_once_everywhere(
    instances: Start, upstream: tuple[Upstream, AuthorizationServer, str], redis_url: str
) -> None:
    a, b = await instances(redis_url, 2)
    server = upstream[0]
    assert await change(a, "alice", "alice-key-1") == 204
    assert await sent_as(b, TOKENS["alice"]) == "sent" and server.seen[-1] == "Bearer alice-key-1"

    # b keeps what it read for a few seconds; a's broadcast makes it read the store again.
    assert await change(a, "alice", "alice-key-2") == 204

    async def rotated() -> bool:
        return await sent_as(b, TOKENS["alice"]) == "sent" and server.seen[-1] == "Bearer alice-key-2"

    await until(rotated, "b to use the new secret", limit=3)
    assert await change(b, "alice", None) == 204

    async def gone() -> bool:
        return "none is set" in await sent_as(a, TOKENS["alice"])

    await until(gone, "a to see the secret deleted", limit=3)


async def call_whoami(proxy: ProxyProcess, mount: str, session: str, token: str, tool: str) -> dict[str, Any]:
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    status, body, _ = await post(f"{proxy.base}/mcp/{mount}", call, **{"Mcp-Session-Id": session}, **bearer(token))
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def test_a_forwarded_request_is_sent_with_the_callers_own_credentials(
    instances: Start, upstream: tuple[Upstream, AuthorizationServer, str], redis_url: str
) -> None:
    a, b = await instances(redis_url, 2)
    server, authorization, _ = upstream
    assert await change(b, "alice", "alice-key-1") == 204
    assert await change(b, "bob", "bob-key-1") == 204

    # A virtual server's session lives on the instance that opened it (a); b forwards its requests there.
    for who in ("alice", "bob"):
        session = await open_session(f"{a.base}/mcp/vk", **bearer(TOKENS[who]))
        body = await call_whoami(b, "vk", session, TOKENS[who], "keyed__whoami")
        assert body["result"]["content"][0]["text"] == f"Bearer {who}-key-1", body
    assert "its upstream at instance a" in b.log(), "served through the owner"
    assert not any(token in str(server.seen) for token in TOKENS.values()), "no client token reaches the upstream"

    # A JWT is exchanged where the client is; only the exchanged token goes on to the owner, through Redis.
    carol = KEY.sign(sub="carol")
    session = await open_session(f"{a.base}/mcp/vx", **bearer(carol))
    watcher = aioredis.Redis.from_url(redis_url)
    frames = watcher.pubsub()
    await frames.psubscribe("shadowproxy:node:*")
    try:
        body = await call_whoami(b, "vx", session, carol, "exchanged__whoami")
        seen: list[bytes] = []
        # Everything published is buffered by now; the subscription's own confirmation comes first.
        while (item := await frames.get_message(timeout=0.5)) is not None:
            if item["type"] == "pmessage":
                seen.append(item["data"])
    finally:
        await frames.aclose()
        await watcher.aclose()
    text = body["result"]["content"][0]["text"]
    assert text.startswith("Bearer exchanged-carol-"), body
    assert any(b"exchanged-carol-" in frame for frame in seen), "forwarded with the exchanged token"
    assert not any(carol.encode() in frame for frame in seen), "the client's own token never leaves b"
    assert all(call["subject_token"] == carol for call in authorization.calls)
    assert carol not in str(server.seen)
