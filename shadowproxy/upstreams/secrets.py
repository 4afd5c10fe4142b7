"""Per-principal upstream secrets (a user's own API key for a server), kept encrypted in the session store.

Each value is a Fernet token (AES-128-CBC with HMAC-SHA256, from ``cryptography``) made with the key that
``credentials.key_env`` or ``credentials.key_file`` gives; it is encrypted here, before it reaches the store,
and kept there as the entry ``[upstream, principal]`` of the space :data:`SPACE`. So every instance on one
Redis (or one SQLite file) sees a secret set on any of them. The admin API
(``PUT /_shadowproxy/credentials/{upstream}/{principal}``) and ``shadowproxy credentials set`` write it.

A secret read is kept decrypted for :data:`FRESH` seconds, so a request does not wait on the store each time;
after that it is read again (decrypted again only when it changed). A change made here is seen here at once;
in a cluster it is announced (:attr:`SecretBox.announce`), so other instances drop their copy at once; without
one, they see a change or a deletion within :data:`FRESH` seconds. A secret not found is never remembered: one
set on another instance is used at the next request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken

from shadowproxy.config.credentials import CredentialsConfig
from shadowproxy.stores import SessionStore, StoreError

log = logging.getLogger(__name__)

MAX_SECRET = 16 * 1024
SPACE = "upstream-secrets"
IMPORTED = "upstream-secrets-imported"
"""The ``secrets_file`` paths already imported."""
FRESH = 5.0
"""Seconds a secret read from the store is used before it is read again."""
MAX_OPENED = 10_000


def entry_key(upstream: str, principal: str) -> str:
    """The store key of one secret: a JSON pair, so that neither name can run into the other."""
    return orjson.dumps([upstream, principal]).decode()


class SecretBox:
    """The encrypted secrets of every upstream and principal, in the store; the decrypted ones recently used."""

    def __init__(self, settings: CredentialsConfig, store: SessionStore) -> None:
        self.key = settings.key
        self.store = store
        self.legacy = Path(settings.secrets_file) if settings.secrets_file is not None else None
        self._fernet: Fernet | None = None
        self.opened: dict[tuple[str, str], tuple[bytes, str, float]] = {}
        """(upstream, principal) -> (the sealed value, its secret, when it was read)."""
        self.announce: Callable[[str, str], None] | None = None
        """Set by the cluster: tell the other instances that a secret changed."""

    @property
    def fernet(self) -> Fernet:
        """The key, read when first needed; ``ValueError`` naming the problem when it cannot be."""
        if self._fernet is None:
            try:
                self._fernet = Fernet(self.key.read().encode())
            except ValueError as exc:
                raise ValueError(f"the credentials key is not usable (credentials keygen makes one): {exc}") from None
        return self._fernet

    async def get(self, upstream: str, principal: str) -> str | None:
        """The principal's secret for the upstream, or ``None``; ``ValueError`` when it cannot be had."""
        now = time.monotonic()
        opened = self.opened.get((upstream, principal))
        if opened is not None and now - opened[2] < FRESH:
            return opened[1]
        try:
            sealed = await self.store.entry(SPACE, entry_key(upstream, principal))
        except StoreError as exc:
            if opened is not None:
                return opened[1]  # a store that is down for a moment stops no one who was being served
            raise ValueError(f"the secrets cannot be read from the store: {exc}") from None
        if sealed is None:
            self.opened.pop((upstream, principal), None)
            return None
        if opened is not None and opened[0] == sealed:
            secret = opened[1]
        else:
            try:
                secret = self.fernet.decrypt(sealed).decode()
            except InvalidToken:
                raise ValueError("its stored secret was encrypted with another key") from None
        if len(self.opened) >= MAX_OPENED:
            self.opened.clear()
        self.opened[(upstream, principal)] = (sealed, secret, now)
        return secret

    async def set(self, upstream: str, principal: str, secret: str) -> None:
        """Encrypt and store; ``ValueError`` for an unusable secret or key, :class:`StoreError` when not stored."""
        if not secret or len(secret) > MAX_SECRET or secret != secret.strip():
            raise ValueError(f"a secret is 1 to {MAX_SECRET} characters without surrounding spaces")
        sealed = self.fernet.encrypt(secret.encode())
        await self.store.put_entry(SPACE, entry_key(upstream, principal), sealed)
        self.opened[(upstream, principal)] = (sealed, secret, time.monotonic())
        self._announce(upstream, principal)

    async def delete(self, upstream: str, principal: str) -> bool:
        """Delete one secret; whether there was one."""
        key = entry_key(upstream, principal)
        self.opened.pop((upstream, principal), None)
        if await self.store.entry(SPACE, key) is None:
            return False
        await self.store.put_entry(SPACE, key, None)
        self._announce(upstream, principal)
        return True

    def forget(self, upstream: str, principal: str) -> None:
        """Another instance changed this secret: read it from the store at its next use."""
        self.opened.pop((upstream, principal), None)

    def _announce(self, upstream: str, principal: str) -> None:
        if self.announce is not None:
            self.announce(upstream, principal)

    async def import_file(self) -> int:
        """Move the secrets of an older ``secrets_file`` into the store (those it does not have), once: a secret
        deleted since is not brought back by the next start. How many were moved."""
        if self.legacy is None or not self.legacy.exists():
            return 0
        done = str(self.legacy.resolve())
        if await self.store.entry(IMPORTED, done) is not None:
            return 0
        try:
            data = orjson.loads(self.legacy.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            log.error("credentials: cannot read %s to import it: %s", self.legacy, exc)
            return 0
        imported = 0
        for upstream, by_principal in data.items() if isinstance(data, dict) else ():
            for principal, sealed in by_principal.items() if isinstance(by_principal, dict) else ():
                key = entry_key(str(upstream), str(principal))
                if isinstance(sealed, str) and await self.store.entry(SPACE, key) is None:
                    await self.store.put_entry(SPACE, key, sealed.encode())
                    imported += 1
        await self.store.put_entry(IMPORTED, done, b"1")
        return imported
