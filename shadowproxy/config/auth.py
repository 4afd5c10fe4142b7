"""The ``auth`` section: static tokens, kept only as SHA-256 digests, and/or a JWT issuer (OAuth 2.1 resource
server). Checking the tokens a request presents is :mod:`shadowproxy.fronts.auth`'s work; the keys are documented
in SECURITY.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, ValidationInfo, field_serializer, model_validator

from shadowproxy.config.validation import FROM_FILE, Section, located

HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
NAME = re.compile(r"[^\s:]+")
SOURCE = "source"
"""The validation context's key naming the config file, which relative paths are relative to."""

Text = Annotated[str, Field(min_length=1)]


def quoted(text: str) -> str:
    """``text`` made safe inside a quoted header parameter: printable ASCII, no quote or backslash."""
    return "".join(char for char in text if " " <= char <= "~" and char not in '"\\')


def relative_to(path: str, source: str | None) -> str:
    """``path``, relative to the config file's folder when it is relative and there is a file."""
    if Path(path).is_absolute() or source is None:
        return path
    return str(Path(source).parent / path)


def _strings(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise ValueError("must be a string or a list of strings")
    return tuple(value)


Strings = Annotated[tuple[str, ...], BeforeValidator(_strings)]


def _url(value: Any) -> Any:
    if isinstance(value, str) and not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


Url = Annotated[Text, BeforeValidator(_url)]


class StaticToken(Section):
    """A token, known by its SHA-256 digest: ``{name, sha256}`` in the file, with ``roles`` when ``roles`` is set."""

    name: str
    digest: bytes
    roles: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any, info: ValidationInfo) -> Any:
        from_file = bool(info.context and info.context.get(FROM_FILE))
        if isinstance(data, cls) or (not from_file and isinstance(data, dict) and {"name", "digest"} <= set(data)):
            return data
        if not isinstance(data, dict) or set(data) - {"roles"} != {"name", "sha256"}:
            hint = "; store the token's sha256, never the token" if isinstance(data, dict) and "token" in data else ""
            raise ValueError(f"must be exactly {{name, sha256}}, with roles if any{hint}")
        return {**token_values(data["name"], data["sha256"]), "roles": role_names(data.get("roles", ()))}

    @field_serializer("digest")
    def _hex(self, digest: bytes) -> str:
        return digest.hex()


def role_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise ValueError("roles must be a role name or a list of role names")
    return tuple(value)


def token_values(name: Any, digest: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError("the name must be a non-empty string without spaces or colons")
    if not isinstance(digest, str) or not HEX_DIGEST.fullmatch(digest):
        raise ValueError("sha256 must be 64 hex digits (sha256sum of the token)")
    return {"name": name, "digest": bytes.fromhex(digest)}


def read_tokens_file(path: str, source: str | None = None) -> list[StaticToken]:
    """Lines ``name:sha256hex`` (``name:sha256hex:role,role`` with roles); blank lines and ``#`` comments are
    skipped. Relative to the config file."""
    file = Path(relative_to(path, source))
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise located("tokens_file", f"cannot read {file}: {exc}") from None
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, digest = line.partition(":")
        try:
            if not colon:
                raise ValueError('expected "name:sha256hex"')
            digest, _, roles = digest.partition(":")
            values = token_values(name.strip(), digest.strip())
            named = tuple(role.strip() for role in roles.split(",") if role.strip())
            tokens.append(StaticToken.model_construct(**values, roles=named))
        except ValueError as exc:
            raise located("tokens_file", str(exc), f"{file}:{number}") from None
    return tokens


class JwtSettings(Section):
    noun: ClassVar[str] = "key"

    issuer: Text
    audience: Strings
    required_scopes: Strings = ()
    jwks_file: Text | None = None
    """As written: relative to the config file's folder (:func:`relative_to`)."""
    jwks_url: Url | None = None
    leeway: float = 30.0

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if ("jwks_file" in data) == ("jwks_url" in data):
            raise ValueError("needs exactly one of jwks_file or jwks_url")
        if "issuer" not in data:
            raise located("issuer", "is required: the token issuer (iss) to accept")
        if not data.get("audience"):
            raise located("audience", "is required (or set auth.resource)")
        leeway = data.get("leeway", 30.0)
        if isinstance(leeway, bool) or not isinstance(leeway, int | float) or not 0 <= leeway <= 600:
            raise located("leeway", "must be a number of seconds from 0 to 600")
        return data


class AuthSettings(Section):
    """``config.auth``: who may use the proxy."""

    noun: ClassVar[str] = "key"

    tokens: tuple[StaticToken, ...] = ()
    tokens_file: Text | None = None
    jwt: JwtSettings | None = None
    resource: Url | None = None
    authorization_servers: Strings = ()
    realm: Text = "shadowproxy"

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        tokens = data.get("tokens", [])
        if not isinstance(tokens, list | tuple):
            raise located("tokens", "must be a list of {name, sha256}")
        if "tokens_file" in data:
            path = data["tokens_file"]
            if not isinstance(path, str) or not path:
                raise located("tokens_file", "must be a non-empty string")
            data["tokens"] = [*tokens, *read_tokens_file(path, (info.context or {}).get(SOURCE))]
        jwt = data.get("jwt")
        if isinstance(jwt, dict) and not jwt.get("audience") and isinstance(data.get("resource"), str):
            data["jwt"] = {**jwt, "audience": data["resource"]}
        if not data.get("authorization_servers") and isinstance(jwt, dict) and isinstance(jwt.get("issuer"), str):
            data["authorization_servers"] = [jwt["issuer"]]
        return data

    @model_validator(mode="after")
    def _usable(self) -> AuthSettings:
        if not self.tokens and self.jwt is None:
            raise ValueError("give tokens, tokens_file or jwt (or remove auth)")
        names = [token.name for token in self.tokens]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate is not None:
            raise located("tokens", f"token name {duplicate!r} is used twice")
        if quoted(self.realm) != self.realm:
            raise located("realm", 'must be printable ASCII without " or \\')
        return self
