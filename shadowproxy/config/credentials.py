"""Credentials the proxy adds on the way up, per upstream, and the key its per-principal secrets are kept under.

::

    credentials:                             # needed for per_principal
      key_env: SHADOWPROXY_CREDENTIALS_KEY   # or key_file: a Fernet key (shadowproxy credentials keygen)
      # secrets_file: secrets.json           # only an older file to import: secrets are kept in the store
    upstreams:
      github:
        url: https://mcp.github.example/mcp
        credentials:
          header: Authorization              # the default; prefix "Bearer " too
          static: {env: GITHUB_TOKEN}        # or {file: /run/secrets/github}
          # per_principal: true              # each principal's own secret (admin API or CLI)
          # token_exchange: {token_url: https://as/token, client_id: proxy,
          #                  client_secret: {env: AS_SECRET}, audience: https://mcp.github.example}

A value is never written in the config in clear: each comes from an environment variable or a file, read when
first needed (so that ``config check`` runs where the secrets are not); the proxy logs, as it starts, each one
it cannot read. Adding them is :mod:`shadowproxy.upstreams.credentials`. Per-principal secrets are kept in the
session store, encrypted with the key (:mod:`shadowproxy.upstreams.secrets`); ``secrets_file``, where earlier
versions kept them, is imported into the store at start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, ValidationInfo

from shadowproxy.config.auth import SOURCE, Url, relative_to
from shadowproxy.config.validation import Flag, Section

Text = Annotated[str, Field(min_length=1)]


class SecretSource(Section):
    """Where a secret is read: ``{env: NAME}`` or ``{file: PATH}`` (relative to the config file)."""

    env: Text | None = None
    file: Text | None = None

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if ("env" in data) == ("file" in data):
            raise ValueError("give exactly one of env and file (never the secret itself)")
        if "file" in data and isinstance(data["file"], str):
            data["file"] = relative_to(data["file"], (info.context or {}).get(SOURCE))
        return data

    def read(self) -> str:
        """The secret, stripped; ``ValueError`` when it is gone or empty."""
        if self.env is not None:
            value = os.environ.get(self.env, "")
        else:
            assert self.file is not None
            try:
                value = Path(self.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"cannot read {self.file}: {exc}") from None
        value = value.strip()
        if not value:
            raise ValueError(f"{self.env or self.file} is empty")
        return value


def _source(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError("must be {env: NAME} or {file: PATH}, never the secret itself")
    return value


Secret = Annotated[SecretSource, BeforeValidator(_source)]


class TokenExchange(Section):
    """RFC 8693: the client's JWT exchanged at ``token_url`` for a token with the upstream's ``audience``."""

    token_url: Url
    client_id: Text
    client_secret: Secret | None = None
    audience: Text | None = None
    resource: Url | None = None
    scope: Text | None = None


class UpstreamCredentials(Section):
    """What the proxy adds to each request to one upstream: exactly one of the three kinds."""

    noun: ClassVar[str] = "key"

    header: Text = "Authorization"
    prefix: str = "Bearer "
    static: Secret | None = None
    per_principal: Flag = False
    token_exchange: TokenExchange | None = None

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kinds = [key for key in ("static", "per_principal", "token_exchange") if data.get(key)]
        if len(kinds) != 1:
            raise ValueError("give exactly one of static, per_principal: true and token_exchange")
        return data


class CredentialsConfig(Section):
    """The ``credentials`` section: the key per-principal secrets are encrypted with (they are kept in the store)."""

    noun: ClassVar[str] = "key"
    file_keys: ClassVar[tuple[str, ...]] = ("key_env", "key_file")
    unlisted: ClassVar[tuple[str, ...]] = ("key",)

    key: SecretSource
    secrets_file: Text | None = None
    """An earlier version's file of secrets, imported into the store at start."""

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if ("key_env" in data) == ("key_file" in data):
            raise ValueError("give exactly one of key_env and key_file")
        data["key"] = {"env": data.pop("key_env")} if "key_env" in data else {"file": data.pop("key_file")}
        if "secrets_file" in data and isinstance(data["secrets_file"], str):
            data["secrets_file"] = relative_to(data["secrets_file"], (info.context or {}).get(SOURCE))
        return data
