"""OAuth 2.1 resource-server mode: JWT access tokens checked against a JWKS, and the protected-resource metadata."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from tests.support import free_port, until

from .helpers import INIT, PING, bearer, client, open_session, post, start_with_auth, write_config
from .keys import AUDIENCE, ISSUER, SigningKey, write_jwks

KEY = SigningKey("key-1")
OTHER = SigningKey("key-2")


def jwt_config(tmp_path: Path, **jwt_settings: Any) -> Path:
    jwks = write_jwks(tmp_path / "jwks.json", KEY)
    settings = {"jwks_file": str(jwks), "issuer": ISSUER, "audience": AUDIENCE, "required_scopes": ["mcp"]}
    return write_config(tmp_path / "sp.yaml", {"jwt": {**settings, **jwt_settings}})


def unsigned(**claims: Any) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300, "scope": "mcp", **claims}
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': KEY.kid})}.{part(payload)}."


def confused() -> str:
    """HS256 keyed with the public key's PEM: the classic algorithm-confusion forgery."""
    pem = KEY.private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300, "scope": "mcp"}
    header = base64.urlsafe_b64encode(orjson.dumps({"alg": "HS256", "kid": KEY.kid})).rstrip(b"=")
    body = base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=")
    signature = hmac.new(pem, header + b"." + body, hashlib.sha256).digest()
    return (header + b"." + body + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


BAD_TOKENS = {
    "expired": lambda: KEY.sign(exp=int(time.time()) - 3600),
    "wrong issuer": lambda: KEY.sign(iss="https://elsewhere.test"),
    "wrong audience": lambda: KEY.sign(aud="https://other-resource.test/mcp"),
    "no expiry": lambda: KEY.sign(exp=None),
    "no subject": lambda: KEY.sign(sub=None),
    "unknown key": lambda: OTHER.sign(),
    "forged with another key under a known kid": lambda: jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60},
        OTHER.private,
        algorithm="RS256",
        headers={"kid": KEY.kid},
    ),
    "alg none": unsigned,
    "HS256 keyed with the public key": confused,
    "not a JWT": lambda: "a.b.c",
    "tampered payload": lambda: KEY.sign().rsplit(".", 2)[0] + "." + unsigned().split(".")[1] + "." + "AAAA",
}


async def test_a_valid_token_is_accepted_and_its_subject_is_the_principal(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_with_auth(start_proxy, jwt_config(tmp_path))
    async with client(proxy.url, KEY.sign(sub="carol", scope="read mcp")) as carol:
        assert (await carol.call_tool("echo", {"text": "ok"})).content[0].text == "ok"  # type: ignore[union-attr]
    session = await open_session(proxy.url, **bearer(KEY.sign(sub="carol")))
    # A fresh token for the same subject continues the session; another subject's token does not.
    status, _, _ = await post(proxy.url, PING, **{"Mcp-Session-Id": session, **bearer(KEY.sign(sub="carol"))})
    assert status == 200
    status, _, _ = await post(proxy.url, PING, **{"Mcp-Session-Id": session, **bearer(KEY.sign(sub="dave"))})
    assert status == 404
    # "scp" as a list, as some issuers write it.
    status, _, _ = await post(proxy.url, INIT, **bearer(KEY.sign(scope=None, scp=["mcp"])))
    assert status == 200


async def test_bad_tokens_are_refused(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_with_auth(start_proxy, jwt_config(tmp_path))
    for name, make in BAD_TOKENS.items():
        status, payload, headers = await post(proxy.url, INIT, **bearer(make()))
        assert status == 401, (name, payload)
        assert payload["error"] == "invalid_token", name
        challenge = headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, name
        assert 'resource_metadata="' in challenge, name
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/readyz") as response:
        assert (await response.json())["sessions"] == 0, "no refused token opened a session"


async def test_missing_scope_is_403_insufficient_scope(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_with_auth(start_proxy, jwt_config(tmp_path, required_scopes=["mcp", "tools"]))
    status, payload, headers = await post(proxy.url, INIT, **bearer(KEY.sign(scope="mcp")))
    assert status == 403
    assert payload["error"] == "insufficient_scope" and "tools" in payload["error_description"]
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    assert 'scope="mcp tools"' in headers["WWW-Authenticate"]
    status, _, _ = await post(proxy.url, INIT, **bearer(KEY.sign(scope="tools mcp")))
    assert status == 200


async def test_challenge_points_to_the_metadata_document(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_with_auth(start_proxy, jwt_config(tmp_path))
    status, _, headers = await post(proxy.url, INIT)
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    assert "error=" not in challenge, "no error code when no credentials were given (RFC 6750 3.1)"
    url = challenge.split('resource_metadata="')[1].split('"')[0]
    assert url == f"{proxy.base}/.well-known/oauth-protected-resource/mcp"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        document = await response.json()
    assert document["resource"] == proxy.url
    assert document["authorization_servers"] == [ISSUER]
    assert document["scopes_supported"] == ["mcp"]
    assert document["bearer_methods_supported"] == ["header"]


async def test_configured_resource_is_used_for_metadata(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    jwks = write_jwks(tmp_path / "jwks.json", KEY)
    auth = {
        "resource": AUDIENCE,
        "authorization_servers": ["https://login.test"],
        "jwt": {"jwks_file": str(jwks), "issuer": ISSUER},
    }
    proxy = await start_with_auth(start_proxy, write_config(tmp_path / "sp.yaml", auth))
    _, _, headers = await post(proxy.url, INIT)
    assert (
        'resource_metadata="https://proxy.test/.well-known/oauth-protected-resource/mcp"' in headers["WWW-Authenticate"]
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{proxy.base}/.well-known/oauth-protected-resource") as response:
            document = await response.json()
    assert document["resource"] == AUDIENCE and document["authorization_servers"] == ["https://login.test"]
    # The audience defaults to the resource.
    status, _, _ = await post(proxy.url, INIT, **bearer(KEY.sign(scope="")))
    assert status == 200


class JwksServer:
    """A real HTTP server for a JWKS document that counts its fetches."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"
        self.runner: web.AppRunner | None = None

    async def serve(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"keys": [key.jwk() for key in self.keys]})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks.json", self.serve)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    server = JwksServer(KEY)
    try:
        yield server
    finally:
        await server.stop()


async def test_jwks_url_is_fetched_lazily_and_not_hammered(start_proxy, tmp_path: Path, jwks_server) -> None:  # type: ignore[no-untyped-def]
    auth = {"jwt": {"jwks_url": jwks_server.url, "issuer": ISSUER, "audience": AUDIENCE}}
    proxy = await start_with_auth(start_proxy, write_config(tmp_path / "sp.yaml", auth))
    # The issuer is down: the proxy cannot check tokens, and says so with a 503, not a 401.
    status, payload, _ = await post(proxy.url, INIT, **bearer(KEY.sign()))
    assert status == 503 and payload["error"] == "temporarily_unavailable"
    await jwks_server.start()

    async def accepted() -> bool:
        return (await post(proxy.url, INIT, **bearer(KEY.sign())))[0] == 200

    await until(accepted, "the proxy to fetch the JWKS once the issuer is up")
    assert jwks_server.fetches == 1
    for _ in range(5):
        status, _, _ = await post(proxy.url, INIT, **bearer(OTHER.sign()))
        assert status == 401
    assert jwks_server.fetches == 1, "tokens with unknown keys must not refetch the JWKS each time"
