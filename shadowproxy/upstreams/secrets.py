"""Per-principal upstream secrets (a user's own API key for a server), kept encrypted in a JSON file.

Each value is a Fernet token (AES-128-CBC with HMAC-SHA256, from ``cryptography``) made with the key that
``credentials.key_env`` or ``credentials.key_file`` gives; the file holds ``{upstream: {principal: token}}``
and is replaced whole (written aside, then renamed) on each change, mode 0600. The admin API
(``PUT /_shadowproxy/credentials/{upstream}/{principal}``) and ``shadowproxy credentials set`` write it; the
proxy reads it at start and keeps the decrypted values of the secrets used.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from shadowproxy.config.credentials import CredentialsConfig
from shadowproxy.core.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

MAX_SECRET = 16 * 1024


class SecretBox:
    """The encrypted secrets of every upstream and principal."""

    def __init__(self, settings: CredentialsConfig) -> None:
        self.key = settings.key
        self._fernet: Fernet | None = None
        self.path = Path(settings.secrets_file)
        self.sealed: dict[str, dict[str, str]] = {}
        self.opened: dict[tuple[str, str], str] = {}
        if self.path.exists():
            try:
                data = orjson.loads(self.path.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                raise ConfigError(f"cannot read {self.path}: {exc}", key="credentials.secrets_file") from None
            if not isinstance(data, dict):
                raise ConfigError(
                    f"{self.path} is not a mapping of upstream to secrets", key="credentials.secrets_file"
                )
            self.sealed = {str(up): dict(by) for up, by in data.items() if isinstance(by, dict)}

    @property
    def fernet(self) -> Fernet:
        """The key, read when first needed; ``ValueError`` naming the problem when it cannot be."""
        if self._fernet is None:
            # Imported here, not at start: only a proxy with per-principal secrets needs cryptography.
            from cryptography.fernet import Fernet

            try:
                self._fernet = Fernet(self.key.read().encode())
            except ValueError as exc:
                raise ValueError(f"the credentials key is not usable (credentials keygen makes one): {exc}") from None
        return self._fernet

    def get(self, upstream: str, principal: str) -> str | None:
        opened = self.opened.get((upstream, principal))
        if opened is not None:
            return opened
        sealed = self.sealed.get(upstream, {}).get(principal)
        if sealed is None:
            return None
        fernet = self.fernet
        from cryptography.fernet import InvalidToken  # loaded by self.fernet

        try:
            opened = fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None
        self.opened[(upstream, principal)] = opened
        return opened

    def set(self, upstream: str, principal: str, secret: str) -> None:
        if not secret or len(secret) > MAX_SECRET or secret != secret.strip():
            raise ValueError(f"a secret is 1 to {MAX_SECRET} characters without surrounding spaces")
        self.sealed.setdefault(upstream, {})[principal] = self.fernet.encrypt(secret.encode()).decode()
        self.opened[(upstream, principal)] = secret
        self._write()

    def delete(self, upstream: str, principal: str) -> bool:
        found = self.sealed.get(upstream, {}).pop(principal, None) is not None
        self.opened.pop((upstream, principal), None)
        if found:
            self._write()
        return found

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(orjson.dumps(self.sealed, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
