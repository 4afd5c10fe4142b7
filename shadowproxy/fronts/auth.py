"""Client authentication on the HTTP side: static tokens, and OAuth 2.1 resource-server mode.

``config.auth`` (:class:`~shadowproxy.config.auth.AuthSettings`; absent: no authentication) names static tokens, kept
only as SHA-256 digests and compared in constant time, and/or a JWT issuer whose tokens are checked for
signature (against a JWKS file or URL), issuer, audience, expiry and scopes. The caller's identity (the token's
name, or the JWT's ``sub``) is left at ``request[PRINCIPAL]``, where the endpoint records it on the session and
binds the session to it. A refusal is ``401`` (``403`` for missing scopes) with a ``WWW-Authenticate`` header
that points to the protected-resource metadata (RFC 9728) at ``/.well-known/oauth-protected-resource[<path>]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from shadowproxy.config import Config
from shadowproxy.config.auth import AuthSettings, quoted, relative_to
from shadowproxy.core.errors import ConfigError
from shadowproxy.fronts.principal import PRINCIPAL
from shadowproxy.proxy.roles import Access
from shadowproxy.upstreams.credentials import CALLER, Caller

log = logging.getLogger(__name__)

WELL_KNOWN = "/.well-known/oauth-protected-resource"
METADATA_ROUTE = WELL_KNOWN + "{tail:(/.*)?}"
EXEMPT = frozenset({"/healthz", "/readyz"})
# The admin API checks its own token (config.admin); a client token must not open it, nor be needed for it.
EXEMPT_PREFIXES = (WELL_KNOWN, "/_shadowproxy/")
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
REFETCH = 30.0
RETRY = 1.0
MAX_AGE = 3600.0
FETCH_TIMEOUT = 10.0


class Refused(Exception):
    """A request without acceptable credentials; becomes a 401, 403 or 503 with ``WWW-Authenticate``."""

    def __init__(self, error: str | None, description: str, *, status: int = 401, scope: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.scope = scope


class JwksUnavailable(Exception):
    """No signing keys could be had from the JWKS URL."""


def signing_keys(data: Any) -> dict[str | None, tuple[Any, str | None]]:
    """``kid -> (public key, alg or None)`` for every usable signing key of a JWKS document."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError('not a JWKS document: no "keys" list')
    import jwt  # PyJWT, with cryptography under it, is loaded only by a proxy that checks JWTs

    keys: dict[str | None, tuple[Any, str | None]] = {}
    for item in data["keys"]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(item).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        keys[item.get("kid")] = (key, item.get("alg"))
    if not keys:
        raise ValueError("the JWKS has no usable signing key")
    return keys


class Jwks:
    """Signing keys by ``kid``, read from a file at start or fetched from a URL.

    A URL is fetched when first needed, when a token names a kid not seen yet (at most once per ``REFETCH``
    seconds, so junk tokens cannot hammer the issuer; every ``RETRY`` seconds while there are no keys at all),
    and when the keys are older than ``MAX_AGE`` (so a key the issuer revoked goes away).
    """

    def __init__(self, file: str | None, url: str | None) -> None:
        self.url = url
        self.keys: dict[str | None, tuple[Any, str | None]] = {}
        self.fetched_at = -math.inf
        self._lock = asyncio.Lock()
        if file is not None:
            try:
                self.keys = signing_keys(orjson.loads(Path(file).read_bytes()))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot use {file}: {exc}", key="auth.jwt.jwks_file") from None

    def lookup(self, kid: str | None) -> tuple[Any, str | None] | None:
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        return self.keys.get(kid)

    async def key(self, kid: str | None) -> tuple[Any, str | None] | None:
        found = self.lookup(kid)
        if self.url is None or (found is not None and time.monotonic() - self.fetched_at < MAX_AGE):
            return found
        async with self._lock:
            since = time.monotonic() - self.fetched_at
            wait = REFETCH if self.keys else RETRY
            if since >= MAX_AGE or (self.lookup(kid) is None and since >= wait):
                await self.fetch()
        if not self.keys:
            raise JwksUnavailable(f"no keys from {self.url}")
        return self.lookup(kid)

    async def fetch(self) -> None:
        assert self.url is not None
        self.fetched_at = time.monotonic()
        try:
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as client, client.get(self.url) as response:
                response.raise_for_status()
                self.keys = signing_keys(orjson.loads(await response.read()))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("cannot fetch the JWKS from %s (keeping %d known keys): %s", self.url, len(self.keys), exc)


class Authenticator:
    """Decides who a request is from."""

    def __init__(self, settings: AuthSettings, source: str | None = None, access: Access | None = None) -> None:
        self.settings = settings
        self.access = access
        self.jwt = settings.jwt
        self.jwks = None
        if self.jwt is not None:
            jwks_file = relative_to(self.jwt.jwks_file, source) if self.jwt.jwks_file is not None else None
            self.jwks = Jwks(jwks_file, self.jwt.jwks_url)

    async def principal(self, request: web.BaseRequest) -> str:
        token = bearer_token(request)
        found = self.static(token)
        if found is not None:
            return found
        if self.jwt is not None and token.count(".") == 2 and "X-API-Key" not in request.headers:
            return await self.verify_jwt(token)
        raise Refused("invalid_token", "the token is not valid")

    def static(self, token: str) -> str | None:
        """The name of the static token, compared with every one in constant time."""
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for candidate in self.settings.tokens:
            if hmac.compare_digest(candidate.digest, digest):
                found = candidate.name
        return found

    async def verify_jwt(self, token: str) -> str:
        import jwt  # loaded by the JWKS (signing_keys) already; a lookup in sys.modules

        settings = self.jwt
        assert settings is not None and self.jwks is not None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Refused("invalid_token", "the token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC:
            raise Refused("invalid_token", f"the token's algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        try:
            key = await self.jwks.key(kid if isinstance(kid, str) else None)
        except JwksUnavailable as exc:
            log.warning("cannot check a JWT: %s", exc)
            raise Refused("temporarily_unavailable", "the signing keys cannot be fetched", status=503) from None
        if key is None:
            raise Refused("invalid_token", "the token is signed by an unknown key")
        if key[1] is not None and key[1] != algorithm:
            raise Refused("invalid_token", f"the key is for {key[1]}, not {algorithm}")
        try:
            claims = jwt.decode(
                token,
                key[0],
                algorithms=[algorithm],
                audience=list(settings.audience),
                issuer=settings.issuer,
                leeway=settings.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Refused("invalid_token", f"the token is not valid: {exc}") from None
        except (ValueError, TypeError):
            raise Refused("invalid_token", "the token does not match its signing key") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Refused("invalid_token", 'the token has no "sub"')
        missing = [scope for scope in settings.required_scopes if scope not in scopes_of(claims)]
        if missing:
            wanted = " ".join(settings.required_scopes)
            raise Refused("insufficient_scope", f"missing scope(s): {' '.join(missing)}", status=403, scope=wanted)
        if self.access is not None:
            self.access.note(subject, claims)
        return subject


def bearer_token(request: web.Request) -> str:
    """The credential a request presents; a ``Refused`` without an error code when there is none."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused("invalid_request", "use Authorization: Bearer <token>", status=400)
        return token.strip()
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    raise Refused(None, "authentication required")


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """The granted scopes: ``scope`` (space-separated, RFC 8693) or ``scp`` (a list, as some issuers write it)."""
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list):
        return frozenset(item for item in scope if isinstance(item, str))
    return frozenset()


def metadata_url(request: web.BaseRequest, settings: AuthSettings) -> str:
    """Where this resource's metadata is: the well-known path with the resource's path inserted (RFC 9728 3.1)."""
    if settings.resource is not None:
        scheme, _, rest = settings.resource.partition("://")
        host, slash, path = rest.partition("/")
        return f"{scheme}://{host}{WELL_KNOWN}{slash}{path}".rstrip("/")
    return f"{request.scheme}://{request.host}{WELL_KNOWN}{request.path}".rstrip("/")


def refusal(request: web.BaseRequest, settings: AuthSettings, refused: Refused) -> web.Response:
    """The 401/403 with a ``WWW-Authenticate`` challenge (RFC 6750 3, MCP authorization)."""
    parts = [f'realm="{settings.realm}"']
    if settings.jwt is not None:
        parts.append(f'resource_metadata="{metadata_url(request, settings)}"')
    if refused.error is not None:
        parts.append(f'error="{refused.error}"')
        parts.append(f'error_description="{quoted(refused.description)}"')
    if refused.scope is not None:
        parts.append(f'scope="{refused.scope}"')
    body = {"error": refused.error or "unauthorized", "error_description": refused.description}
    return web.json_response(body, status=refused.status, headers={"WWW-Authenticate": "Bearer " + ", ".join(parts)})


def gate(
    config: Config, access: Access | None = None
) -> Callable[[web.BaseRequest], Awaitable[web.Response | None]] | None:
    """The check every request passes (its refusal, or ``None`` to go on), or ``None`` without ``auth``; with
    ``access`` (roles), a JWT's roles are noted as its claims say."""
    settings = config.auth
    if settings is None:
        return None
    authenticator = Authenticator(settings, config.source, access)
    # Upstream credentials of the caller's own (its secret, its JWT exchanged) need to know who the caller is.
    callers = any(up.credentials is not None and up.credentials.static is None for up in config.upstreams)

    async def authenticate(request: web.BaseRequest) -> web.Response | None:
        path = request.path
        if path in EXEMPT or path.startswith(EXEMPT_PREFIXES):
            return None
        try:
            principal = request[PRINCIPAL] = await authenticator.principal(request)
        except Refused as refused:
            log.info("refused %s %s: %s", request.method, path, refused.description)
            return refusal(request, settings, refused)
        if callers:
            CALLER.set(Caller(principal, bearer_token(request)))
        return None

    return authenticate


def metadata(config: Config) -> web.Handler:
    """The protected-resource metadata handler (RFC 9728); ``404`` unless OAuth (``auth.jwt``) is configured."""
    settings = config.auth

    async def handler(request: web.Request) -> web.Response:
        if settings is None or settings.jwt is None:
            raise web.HTTPNotFound()
        tail = request.match_info.get("tail") or config.path
        resource = settings.resource or f"{request.scheme}://{request.host}{tail}"
        document = {
            "resource": resource,
            "authorization_servers": list(settings.authorization_servers),
            "bearer_methods_supported": ["header"],
            "scopes_supported": list(settings.jwt.required_scopes),
            "resource_name": "ShadowProxy",
        }
        return web.json_response(document, headers={"Cache-Control": "max-age=300"})

    return handler
