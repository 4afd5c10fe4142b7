"""The credential a Streamable HTTP upstream is sent with, added on the way up (``upstreams.X.credentials``).

Which client a request is from is :data:`CALLER`, set by client authentication
(:mod:`shadowproxy.fronts.auth`) in the task that then carries the request upstream, only when some upstream
has credentials. A static secret is the same for everyone; a per-principal one is the caller's own
(:mod:`shadowproxy.upstreams.secrets`); a token exchange (RFC 8693) trades the caller's JWT at the
authorization server for one with the upstream's audience, cached until shortly before it expires. The
client's own ``Authorization`` is never passed on. A credential that cannot be had is a
:class:`CredentialMissing`, which the client gets as the request's error, and which is logged: the request
is never sent without it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import NamedTuple, Protocol

import aiohttp
import orjson

from shadowproxy.config.credentials import SecretSource, TokenExchange, UpstreamCredentials
from shadowproxy.core.errors import UpstreamError
from shadowproxy.upstreams.secrets import SecretBox

log = logging.getLogger(__name__)

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
MARGIN = 30.0
"""Seconds before its expiry that an exchanged token is no longer used."""
DEFAULT_LIFETIME = 60.0
MAX_CACHED = 10_000
EXCHANGE_TIMEOUT = 10.0


class Caller(NamedTuple):
    """Who the request being carried is from: the principal, and the bearer token it presented.

    A request forwarded by another instance of a cluster carries no token (the client's own never leaves the
    instance it reached); that instance exchanged it for each upstream that needs it: ``exchanged`` holds the
    tokens by upstream, ``failed`` why one could not be had.
    """

    principal: str | None
    token: str | None
    exchanged: Mapping[str, str] | None = None
    failed: Mapping[str, str] | None = None


CALLER: ContextVar[Caller | None] = ContextVar("shadowproxy_caller", default=None)


class CredentialMissing(UpstreamError):
    """No credential for this upstream and caller; the request is not sent."""

    http_status = 403


class Credential(Protocol):
    async def value(self, upstream: str) -> str: ...


class StaticSecret:
    def __init__(self, source: SecretSource) -> None:
        self.source = source
        self.secret: str | None = None

    async def value(self, upstream: str) -> str:
        if self.secret is None:
            self.secret = readable(upstream, self.source)
        return self.secret


def readable(upstream: str, source: SecretSource) -> str:
    try:
        return source.read()
    except ValueError as exc:
        raise CredentialMissing(f"upstream {upstream!r}: its credential cannot be read: {exc}") from None


class PrincipalSecret:
    def __init__(self, box: SecretBox) -> None:
        self.box = box

    async def value(self, upstream: str) -> str:
        caller = CALLER.get()
        if caller is None or caller.principal is None:
            raise CredentialMissing(f"upstream {upstream!r} needs the caller's own credential; the caller is unknown")
        try:
            secret = await self.box.get(upstream, caller.principal)
        except ValueError as exc:
            raise CredentialMissing(f"upstream {upstream!r}: {exc}") from None
        if secret is None:
            raise CredentialMissing(
                f"upstream {upstream!r} needs a credential for {caller.principal!r}, and none is set "
                f"(shadowproxy credentials set {upstream} {caller.principal})"
            )
        return secret


class ExchangedToken:
    """RFC 8693 token exchange, one cached token per client token."""

    def __init__(self, settings: TokenExchange) -> None:
        self.settings = settings
        self.cache: dict[bytes, tuple[str, float]] = {}

    async def value(self, upstream: str) -> str:
        caller = CALLER.get()
        if caller is not None and caller.exchanged is not None:
            token = caller.exchanged.get(upstream)
            if token is None:
                raise CredentialMissing(
                    (caller.failed or {}).get(upstream)
                    or f"upstream {upstream!r} needs a token exchanged for the client's JWT; none was forwarded"
                )
            return token
        if caller is None or caller.token is None or caller.token.count(".") != 2:
            raise CredentialMissing(f"upstream {upstream!r} needs a token exchanged for the client's JWT; it sent none")
        key = hashlib.sha256(caller.token.encode()).digest()
        now = time.monotonic()
        cached = self.cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        token, lifetime = await self.exchange(upstream, caller.token)
        if len(self.cache) >= MAX_CACHED:
            self.cache = {k: v for k, v in self.cache.items() if v[1] > now}
            if len(self.cache) >= MAX_CACHED:
                self.cache.clear()
        self.cache[key] = (token, now + lifetime - MARGIN)
        return token

    async def exchange(self, upstream: str, subject_token: str) -> tuple[str, float]:
        settings = self.settings
        form = {"grant_type": GRANT, "subject_token": subject_token, "subject_token_type": ACCESS_TOKEN,
                "requested_token_type": ACCESS_TOKEN}  # fmt: skip
        for name in ("audience", "resource", "scope"):
            if getattr(settings, name) is not None:
                form[name] = getattr(settings, name)
        auth = None
        if settings.client_secret is not None:
            auth = aiohttp.BasicAuth(settings.client_id, readable(upstream, settings.client_secret))
        else:
            form["client_id"] = settings.client_id
        try:
            timeout = aiohttp.ClientTimeout(total=EXCHANGE_TIMEOUT)
            async with (
                aiohttp.ClientSession(timeout=timeout) as client,
                client.post(settings.token_url, data=form, auth=auth) as response,
            ):
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CredentialMissing(f"upstream {upstream!r}: the token exchange failed: {exc}") from None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise CredentialMissing(f"upstream {upstream!r}: the token exchange was refused (HTTP {status}, {error})")
        lifetime = answer.get("expires_in")
        valid = isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > MARGIN
        return answer["access_token"], float(lifetime) if valid else DEFAULT_LIFETIME + MARGIN


class Credentials:
    """One upstream's credential, as the header it is sent in."""

    def __init__(self, name: str, settings: UpstreamCredentials, box: SecretBox | None) -> None:
        self.name = name
        self.header = settings.header
        self.prefix = settings.prefix
        self.source: Credential
        if settings.static is not None:
            self.source = StaticSecret(settings.static)
        elif settings.token_exchange is not None:
            self.source = ExchangedToken(settings.token_exchange)
        else:
            assert box is not None, "the config requires a credentials section for per_principal"
            self.source = PrincipalSecret(box)

    async def add(self, headers: dict[str, str]) -> None:
        """Put the credential in ``headers``; :class:`CredentialMissing` (logged) when there is none."""
        try:
            headers[self.header] = self.prefix + await self.source.value(self.name)
        except CredentialMissing as exc:
            log.warning("not sent to %s: %s", self.name, exc.message)
            raise


def exchanging(upstream: object) -> list[Credentials]:
    """The credentials of ``upstream``, or of its members (a virtual server's), that exchange the caller's token:
    what an instance forwarding a request of the caller must exchange for the one that calls the upstreams."""
    members = getattr(upstream, "members", None)
    reached = members.values() if isinstance(members, Mapping) else (upstream,)
    found = [getattr(each, "credentials", None) for each in reached]
    return [each for each in found if isinstance(each, Credentials) and isinstance(each.source, ExchangedToken)]


async def exchanged_for(upstream: object) -> dict[str, Mapping[str, str]]:
    """The caller's tokens exchanged here for ``upstream``'s credentials (and why any could not be), to send with
    a request forwarded to another instance; ``{}`` when none needs one or the caller presented no token."""
    needing = exchanging(upstream)
    caller = CALLER.get()
    if not needing or caller is None or caller.token is None:
        return {}
    tokens: dict[str, str] = {}
    failed: dict[str, str] = {}
    for credentials in needing:
        try:
            tokens[credentials.name] = await credentials.source.value(credentials.name)
        except CredentialMissing as exc:
            failed[credentials.name] = exc.message
    return {"x": tokens, "xe": failed}


def problem_of(upstream: str, settings: UpstreamCredentials, box: SecretBox | None) -> str | None:
    """What keeps the upstream's credential from being had now (a variable not set, a file not there)."""
    exchange = settings.token_exchange
    try:
        for source in (settings.static, exchange.client_secret if exchange is not None else None):
            if source is not None:
                source.read()
        if settings.per_principal and box is not None:
            box.fernet  # noqa: B018 - reading the key is the check
    except ValueError as exc:
        return f"upstream {upstream!r}: {exc}"
    return None
