"""The session record: what the proxy knows about one client session.

Records are plain data. They are changed on the hot path and handed to the
persistence worker, which writes them to the store in the background; nothing
here waits on a store.
"""

from __future__ import annotations

import enum
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from shadowproxy.core.vault import TokenVault


class SessionState(enum.Enum):
    INITIALIZING = "initializing"
    ACTIVE = "active"
    CLOSED = "closed"
    EXPIRED = "expired"


def new_session_id() -> str:
    """A proxy session id: 192 random bits, URL-safe, visible ASCII as the spec asks."""
    return secrets.token_urlsafe(24)


@dataclass(slots=True)
class SessionRecord:
    """One session. ``id`` is the proxy's; ``upstream_session_id`` is the upstream's own and never leaves the proxy."""

    id: str
    upstream: str = "default"
    upstream_session_id: str | None = None
    protocol_version: str | None = None
    client_info: dict[str, Any] | None = None
    client_capabilities: dict[str, Any] | None = None
    principal: str | None = None
    created_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    messages: int = 0
    errors: int = 0
    state: SessionState = SessionState.INITIALIZING
    tags: list[str] = field(default_factory=list)
    event_cursor: str | None = None
    init_request: str | None = None
    owner: str | None = None
    recording: bool = False
    """A rules ``record`` action put this session on tape (:mod:`shadowproxy.tapes.writer`)."""
    transport: str | None = None
    """How the client reached the proxy (http, websocket, sse, stdio); ``None`` in records from before it was kept."""
    tokens: TokenVault | None = field(default=None, compare=False)
    """The session's reversible tokens (the ``tokenize`` rules action); stored sealed, never shown."""

    @property
    def client_name(self) -> str | None:
        return (self.client_info or {}).get("name")

    @property
    def client_version(self) -> str | None:
        return (self.client_info or {}).get("version")

    def add_tag(self, tag: str) -> None:
        if tag not in self.tags:
            self.tags.append(tag)

    def to_dict(self) -> dict[str, Any]:
        tokens, self.tokens = self.tokens, None
        try:
            data = asdict(self)
        finally:
            self.tokens = tokens
        data["state"] = self.state.value
        data["tokens"] = sealed_tokens(tokens)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known["state"] = SessionState(known.get("state", SessionState.ACTIVE.value))
        known["tags"] = list(known.get("tags") or [])
        sealed = known.get("tokens")
        known["tokens"] = TokenVault.unseal(sealed) if isinstance(sealed, str) else None
        return cls(**known)


def sealed_tokens(value: Any) -> Any:
    """A record's vault as it may leave memory (sealed), for ``orjson.dumps(record, default=...)`` and to_dict."""
    if isinstance(value, TokenVault):
        return value.sealed() if len(value) else None
    if value is None:
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
