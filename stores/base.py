"""The session store seam: one small async protocol, three backends.

A store keeps :class:`~shadowproxy.core.record.SessionRecord` objects and a
per-session event log for SSE resumption. It deliberately knows nothing about
transports, the interceptor chain or the persistence worker: the hot path
never calls a store, the worker does.

    ShadowProxyError
    └── StoreError       a store operation failed (backend down, locked, read-only)
        └── CursorError  a listing cursor this store did not hand out
"""

from __future__ import annotations

import base64
import binascii
import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import orjson

from shadowproxy.core.errors import ShadowProxyError
from shadowproxy.core.record import SessionRecord, SessionState, sealed_tokens

__all__ = [
    "CursorError",
    "ListFilter",
    "SessionStore",
    "StoreError",
    "StoredEvent",
    "check_limit",
    "copy_record",
    "decode_cursor",
    "dump_record",
    "encode_cursor",
    "load_record",
    "make_event_id",
    "sort_key",
    "split_event_id",
]


class StoreError(ShadowProxyError):
    """A store operation failed: the backend is down, locked, read-only or full."""


class CursorError(StoreError, ValueError):
    """A listing cursor that is malformed or was not produced by ``list``."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of a session's SSE log. ``event_id`` encodes ``stream_id``."""

    event_id: str
    stream_id: str
    data: bytes


@runtime_checkable
class SessionStore(Protocol):
    """Where session records and SSE events live between messages and across restarts.

    Records older than the store's ttl (by ``last_seen``) are invisible to
    ``get`` and ``list`` even before ``expire`` removes them, so every backend
    behaves the same whether or not it has native expiry. Listing is ordered by
    ``(created_at, id)``, which does not change when a session is updated, so a
    cursor stays valid while sessions change under it.
    """

    async def open(self) -> None:
        """Connect and check the backend now; optional, since every operation connects lazily."""
        ...

    async def get(self, session_id: str) -> SessionRecord | None:
        """The stored record, or ``None`` if unknown or expired."""
        ...

    async def put_many(self, records: Sequence[SessionRecord]) -> None:
        """Insert or replace ``records`` (all or nothing where the backend allows)."""
        ...

    async def delete(self, session_id: str) -> None:
        """Forget a session and its events; unknown ids are ignored."""
        ...

    async def list(
        self,
        *,
        state: SessionState | None = None,
        upstream: str | None = None,
        principal: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[SessionRecord], str | None]:
        """One page of matching sessions and the cursor of the next page (``None`` at the end)."""
        ...

    async def expire(self, now: float | None = None) -> int:
        """Drop sessions whose ``last_seen`` is older than the ttl; return how many."""
        ...

    async def append_event(self, session_id: str, stream_id: str, data: bytes) -> str:
        """Log an event on one of the session's streams and return its new event id."""
        ...

    async def events_after(self, session_id: str, last_event_id: str) -> list[StoredEvent]:
        """Later events of the stream ``last_event_id`` belongs to, in order; ``[]`` for an unknown id."""
        ...

    async def entries(self, space: str) -> dict[str, bytes]:
        """Every entry of a named space: small documents kept beside the sessions, with no ttl (the tool pins)."""
        ...

    async def entry(self, space: str, key: str) -> bytes | None:
        """One entry of ``space``, or ``None`` (read on its own: a space may be large, the upstream secrets)."""
        ...

    async def put_entry(self, space: str, key: str, value: bytes | None) -> None:
        """Set one entry of ``space``; ``None`` removes it."""
        ...

    async def close(self) -> None:
        """Release connections; the store may not be used afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class ListFilter:
    """The filters of :meth:`SessionStore.list`, checked in Python by backends that cannot index them."""

    state: SessionState | None = None
    upstream: str | None = None
    principal: str | None = None

    def matches(self, record: SessionRecord) -> bool:
        return (
            (self.state is None or record.state is self.state)
            and (self.upstream is None or record.upstream == self.upstream)
            and (self.principal is None or record.principal == self.principal)
        )


_FIELD_VALUES = operator.attrgetter(*(f.name for f in fields(SessionRecord)))


def copy_record(record: SessionRecord) -> SessionRecord:
    """A snapshot that later in-place changes to ``record`` cannot reach.

    ``tags`` is the one field changed in place (``add_tag``); the dicts are
    replaced, never mutated, so sharing them is safe. Positional construction
    is about five times cheaper than ``copy.copy`` on a slots dataclass.
    """
    snapshot = SessionRecord(*_FIELD_VALUES(record))
    snapshot.tags = list(record.tags)
    return snapshot


def dump_record(record: SessionRecord) -> bytes:
    """The record as JSON (orjson serializes the slots dataclass and its enum directly; the token vault sealed)."""
    try:
        return orjson.dumps(record, default=sealed_tokens)
    except TypeError as exc:
        raise StoreError(f"session {record.id} cannot be stored: {exc}") from None


def load_record(raw: bytes | str) -> SessionRecord:
    """The inverse of :func:`dump_record`; a corrupt row is a :class:`StoreError`, not a crash."""
    try:
        return SessionRecord.from_dict(orjson.loads(raw))
    except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise StoreError(f"a stored session record is corrupt: {exc}") from None


def sort_key(record: SessionRecord) -> tuple[float, str]:
    """The listing order: oldest session first, ties broken by id."""
    return (record.created_at, record.id)


def encode_cursor(record: SessionRecord) -> str:
    """An opaque cursor pointing just after ``record`` in listing order."""
    return base64.urlsafe_b64encode(orjson.dumps([record.created_at, record.id])).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The ``(created_at, id)`` position a cursor points after; :class:`CursorError` if it is not one of ours."""
    try:
        created_at, session_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise CursorError(f"invalid cursor {cursor!r}") from None
    if not isinstance(created_at, int | float) or not isinstance(session_id, str):
        raise CursorError(f"invalid cursor {cursor!r}")
    return float(created_at), session_id


def check_limit(limit: int) -> None:
    """Reject a page size that cannot be served (zero, negative, absurd)."""
    if not 1 <= limit <= 10_000:
        raise ValueError(f"limit must be between 1 and 10000, got {limit}")


def make_event_id(stream_id: str, position: str) -> str:
    """An event id ``<stream_id>:<position>``; ``position`` never contains ``:``, so the id splits back."""
    return f"{stream_id}:{position}"


def split_event_id(event_id: str) -> tuple[str, str] | None:
    """``(stream_id, position)`` of an id made by :func:`make_event_id`, or ``None`` if malformed."""
    stream_id, sep, position = event_id.rpartition(":")
    if not sep or not position:
        return None
    return stream_id, position
