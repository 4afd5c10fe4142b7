"""The in-process store: the default, and the reference the other backends are tested against."""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.stores.base import (
    ListFilter,
    StoredEvent,
    check_limit,
    copy_record,
    decode_cursor,
    encode_cursor,
    make_event_id,
    sort_key,
    split_event_id,
)


@dataclass(frozen=True, slots=True)
class _Event:
    seq: int
    stream_id: str
    data: bytes
    at: float


class MemoryStore:
    """Sessions and events in dictionaries; gone when the process exits.

    Records are copied in and out, so a caller mutating its record after
    ``put_many`` (as the hot path does) never changes what is stored.
    """

    def __init__(self, *, ttl: float = 3600.0, max_events: int = 1000, max_event_age: float = 3600.0) -> None:
        self.ttl = ttl
        self.max_events = max_events
        self.max_event_age = max_event_age
        self._sessions: dict[str, SessionRecord] = {}
        self._events: dict[str, deque[_Event]] = {}
        self._entries: dict[str, dict[str, bytes]] = {}
        self._seq = 0

    async def open(self) -> None:
        """Nothing to connect; present so every backend can be opened the same way."""

    def _live(self, record: SessionRecord | None, now: float) -> bool:
        return record is not None and record.last_seen >= now - self.ttl

    async def get(self, session_id: str) -> SessionRecord | None:
        record = self._sessions.get(session_id)
        if record is None or not self._live(record, time.time()):
            return None
        return copy_record(record)

    async def put_many(self, records: Sequence[SessionRecord]) -> None:
        for record in records:
            self._sessions[record.id] = copy_record(record)

    async def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
        self._events.pop(session_id, None)

    async def list(
        self,
        *,
        state: SessionState | None = None,
        upstream: str | None = None,
        principal: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[SessionRecord], str | None]:
        check_limit(limit)
        wanted = ListFilter(state, upstream, principal)
        now = time.time()
        ordered = sorted(self._sessions.values(), key=sort_key)
        start = bisect.bisect_right(ordered, decode_cursor(cursor), key=sort_key) if cursor else 0
        page: list[SessionRecord] = []
        for record in ordered[start:]:
            if self._live(record, now) and wanted.matches(record):
                if len(page) == limit:
                    return page, encode_cursor(page[-1])
                page.append(copy_record(record))
        return page, None

    async def expire(self, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - self.ttl
        stale = [sid for sid, record in self._sessions.items() if record.last_seen < cutoff]
        for session_id in stale:
            await self.delete(session_id)
        return len(stale)

    async def append_event(self, session_id: str, stream_id: str, data: bytes) -> str:
        self._seq += 1
        log = self._events.setdefault(session_id, deque(maxlen=self.max_events))
        log.append(_Event(self._seq, stream_id, bytes(data), time.time()))
        return make_event_id(stream_id, str(self._seq))

    async def events_after(self, session_id: str, last_event_id: str) -> list[StoredEvent]:
        parsed = split_event_id(last_event_id)
        log = self._events.get(session_id)
        if parsed is None or not log or not parsed[1].isdigit():
            return []
        stream_id, position = parsed[0], int(parsed[1])
        cutoff = time.time() - self.max_event_age
        while log and log[0].at < cutoff:
            log.popleft()
        if not any(event.seq == position and event.stream_id == stream_id for event in log):
            return []
        return [
            StoredEvent(make_event_id(event.stream_id, str(event.seq)), event.stream_id, event.data)
            for event in log
            if event.seq > position and event.stream_id == stream_id
        ]

    async def entries(self, space: str) -> dict[str, bytes]:
        return dict(self._entries.get(space, {}))

    async def entry(self, space: str, key: str) -> bytes | None:
        return self._entries.get(space, {}).get(key)

    async def put_entry(self, space: str, key: str, value: bytes | None) -> None:
        if value is None:
            self._entries.get(space, {}).pop(key, None)
        else:
            self._entries.setdefault(space, {})[key] = bytes(value)

    async def close(self) -> None:
        self._sessions.clear()
        self._events.clear()
        self._entries.clear()
