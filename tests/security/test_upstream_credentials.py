"""Credentials added on the way up: a static one, a principal's own (encrypted, set through the CLI and admin
API) and one exchanged for the client's JWT (RFC 8693) at an authorization server written for the test. The
upstream records the headers it got; the client's own Authorization never reaches it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from cryptography.fernet import Fernet

from shadowproxy.cli.main import main
from tests.support import ProxyProcess
from tests.test_http_upstream import Recorder

from .helpers import INIT, bearer, post
from .keys import AUDIENCE, ISSUER, SigningKey, sha256, write_jwks

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = SigningKey("credentials-key")
ADMIN = "credentials-admin-token-0123"
TOKENS = {"alice": "alice-client-token-0123", "bob": "bob-client-token-0123"}
STATIC = "static-upstream-secret"
UPSTREAM_AUDIENCE = "https://upstream.test/mcp"


class AuthorizationServer:
    """A token endpoint that exchanges a JWT (RFC 8693) for ``exchanged-<sub>-<n>``, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.calls.append(form)
        expected = "Basic " + base64.b64encode(b"shadowproxy:as-client-secret").decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("audience") != UPSTREAM_AUDIENCE:
            return web.json_response({"error": "invalid_target"}, status=400)
        subject = form["subject_token"]
        claims = jwt.decode(subject, options={"verify_signature": False})
        token = f"exchanged-{claims['sub']}-{len(self.calls)}"
        answer = {"access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}
        return web.json_response({**answer, "token_type": "Bearer", "expires_in": 300})


@dataclass
class Setup:
    proxy: ProxyProcess
    upstream: Recorder
    authorization: AuthorizationServer


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    folder = tmp_path_factory.mktemp("credentials")
    recorder, authorization = Recorder(), AuthorizationServer()
    upstream_app, as_app = web.Application(), web.Application()
    for path in ("/keyed", "/static", "/exchanged", "/unset"):
        upstream_app.router.add_route("*", path, recorder.handle)
    as_app.router.add_post("/token", authorization.token)
    upstream_runner, upstream = await serve(upstream_app)
    as_runner, issuer = await serve(as_app)
    key = Fernet.generate_key()
    (folder / "key").write_bytes(key)
    # An earlier version's file of secrets: imported into the store at start.
    (folder / "secrets.json").write_text(json.dumps({"keyed": {"dave": Fernet(key).encrypt(b"dave-key").decode()}}))
    (folder / "as-secret").write_text("as-client-secret\n")
    exchange = {"token_url": f"{issuer}/token", "client_id": "shadowproxy", "audience": UPSTREAM_AUDIENCE,
                "client_secret": {"file": "as-secret"}}  # fmt: skip
    settings = {
        "upstreams": {
            "keyed": {"url": f"{upstream}/keyed", "credentials": {"per_principal": True}},
            "static": {"url": f"{upstream}/static", "credentials": {
                "static": {"env": "TEST_STATIC_SECRET"}, "header": "X-Api-Key", "prefix": ""}},
            "exchanged": {"url": f"{upstream}/exchanged", "credentials": {"token_exchange": exchange}},
            "unset": {"url": f"{upstream}/unset", "credentials": {"static": {"env": "TEST_UNSET_SECRET"}}},
        },
        "auth": {
            "tokens": [{"name": name, "sha256": sha256(token)} for name, token in TOKENS.items()],
            "jwt": {"jwks_file": str(write_jwks(folder / "jwks.json", KEY)), "issuer": ISSUER, "audience": AUDIENCE},
        },
        "store": f"sqlite:///{folder / 'sessions.db'}",
        "credentials": {"key_file": "key", "secrets_file": "secrets.json"},
        "admin": {"token": ADMIN},
    }  # fmt: skip
    config = folder / "sp.yaml"
    config.write_text(yaml.safe_dump(settings))
    process = ProxyProcess(folder / "proxy.log")
    try:
        await process.start("--config", str(config), env={"TEST_STATIC_SECRET": STATIC})
        yield Setup(process, recorder, authorization)
    finally:
        await process.stop()
        await upstream_runner.cleanup()
        await as_runner.cleanup()


async def initialize(setup: Setup, mount: str, token: str) -> tuple[int, Any]:
    status, body, _ = await post(f"{setup.proxy.base}/mcp/{mount}", INIT, **bearer(token))
    return status, body


def authorizations(recorder: Recorder, header: str = "Authorization") -> list[str | None]:
    return [headers.get(header) for _, headers, _ in recorder.seen]


async def test_a_principals_own_key_reaches_the_upstream_for_that_principal_only(setup: Setup) -> None:
    cli = ["credentials", "set", "keyed", "alice", "--from-env", "ALICE_KEY", "--url", setup.proxy.base]
    os.environ["ALICE_KEY"] = "alice-upstream-key"
    os.environ["SHADOWPROXY_ADMIN_TOKEN"] = ADMIN
    try:
        assert await asyncio.to_thread(main, cli) == 0
    finally:
        del os.environ["ALICE_KEY"], os.environ["SHADOWPROXY_ADMIN_TOKEN"]
    with sqlite3.connect(Path(setup.proxy.log_path).parent / "sessions.db") as db:
        stored = dict(db.execute("SELECT key, value FROM entries WHERE space = 'upstream-secrets'").fetchall())
    assert b"alice-upstream-key" not in stored['["keyed","alice"]'], "kept encrypted in the store"

    seen = len(setup.upstream.seen)
    status, body = await initialize(setup, "keyed", TOKENS["alice"])
    assert status == 200 and "result" in body
    assert authorizations(setup.upstream)[seen:] == ["Bearer alice-upstream-key"]
    assert not any(TOKENS["alice"] in str(headers) for _, headers, _ in setup.upstream.seen), "the client's token"

    seen = len(setup.upstream.seen)
    status, body = await initialize(setup, "keyed", TOKENS["bob"])
    assert "needs a credential for 'bob', and none is set" in body["error"]["message"]
    assert len(setup.upstream.seen) == seen, "no call without the credential"
    assert "needs a credential for 'bob'" in setup.proxy.log()


async def test_an_earlier_secrets_file_is_imported_into_the_store(setup: Setup) -> None:
    assert "1 secret(s) of" in setup.proxy.log()
    seen = len(setup.upstream.seen)
    status, _ = await initialize(setup, "keyed", KEY.sign(sub="dave"))
    assert status == 200 and authorizations(setup.upstream)[seen:] == ["Bearer dave-key"]


async def test_a_static_credential_replaces_the_clients_authorization(setup: Setup) -> None:
    seen = len(setup.upstream.seen)
    status, _ = await initialize(setup, "static", TOKENS["bob"])
    assert status == 200
    (_, headers, _) = setup.upstream.seen[seen]
    assert headers["X-Api-Key"] == STATIC and "Authorization" not in headers


async def test_a_credential_that_cannot_be_read_is_logged_at_start_and_refuses_calls(setup: Setup) -> None:
    assert "upstream 'unset': TEST_UNSET_SECRET is empty; its requests will be refused" in setup.proxy.log()
    seen = len(setup.upstream.seen)
    _, body = await initialize(setup, "unset", TOKENS["bob"])
    assert "its credential cannot be read: TEST_UNSET_SECRET is empty" in body["error"]["message"]
    assert len(setup.upstream.seen) == seen


async def test_the_clients_jwt_is_exchanged_once_for_an_upstream_token(setup: Setup) -> None:
    carol = KEY.sign(sub="carol")
    seen = len(setup.upstream.seen)
    for _ in range(2):
        status, _ = await initialize(setup, "exchanged", carol)
        assert status == 200
    assert authorizations(setup.upstream)[seen:] == ["Bearer exchanged-carol-1"] * 2, "cached until it expires"
    assert len(setup.authorization.calls) == 1 and setup.authorization.calls[0]["subject_token"] == carol
    status, body = await initialize(setup, "exchanged", TOKENS["alice"])
    assert "needs a token exchanged for the client's JWT" in body["error"]["message"]
