"""The ``admin`` section: the token the admin API (:mod:`shadowproxy.ops.admin`) asks every call for.

::

    admin:
      token: "at least 16 characters"     # or
      token_file: /run/secrets/shadowproxy-admin
      tokens:                             # tokens with roles (the roles section), beside or instead of token
        - {name: ops, sha256: <sha256sum of the token>, roles: [operator]}

``token`` may do everything; a token of ``tokens`` what its roles' ``admin`` operations allow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationInfo

from shadowproxy.config.auth import StaticToken
from shadowproxy.config.validation import Section, located

MIN_TOKEN = 16


class AdminConfig(Section):
    """The validated ``admin`` section."""

    file_keys: ClassVar[tuple[str, ...]] = ("token_file",)

    token: str | None = None
    tokens: tuple[StaticToken, ...] = ()

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "token" in data and "token_file" in data:
            raise ValueError("give exactly one of token and token_file")
        if "token" not in data and "token_file" not in data:
            if not data.get("tokens"):
                raise ValueError("give token, token_file or tokens")
            return data
        if "token" in data:
            key, token = "token", data["token"]
            if not isinstance(token, str):
                raise located(key, f"must be a string, not {type(token).__name__}")
        else:
            key, path = "token_file", data.pop("token_file")
            if not isinstance(path, str) or not path:
                raise located(key, "must be a file path")
            try:
                token = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise located(key, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        if len(token) < MIN_TOKEN or token != token.strip():
            raise located(key, f"the token must be at least {MIN_TOKEN} characters, without surrounding spaces")
        return {**data, "token": token}
