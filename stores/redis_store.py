"""Redis backend: a hash per session with a TTL, two sorted-set indexes, a stream per session for events.

Keys, all under a configurable prefix so several deployments can share one Redis::

    <prefix>session:<id>        hash: record (the JSON record), state, upstream, last_seen; expires at last_seen + ttl
    <prefix>sessions:created    sorted set id -> created_at   (listing order, cursors)
    <prefix>sessions:seen       sorted set id -> last_seen    (expiry)
    <prefix>events:<id>         stream of {s: stream id, d: data}, capped near max_events

Redis expires idle hashes by itself; :meth:`RedisStore.expire` removes what
the indexes and event streams still say about them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.stores.base import (
    ListFilter,
    StoredEvent,
    StoreError,
    check_limit,
    decode_cursor,
    dump_record,
    encode_cursor,
    load_record,
    make_event_id,
    split_event_id,
)

_ENTRY_ID = re.compile(r"\d+-\d+")
_SCAN_BATCH = 200
# One round trip and one reply per batch: redis-py spends far more time packing and parsing
# per-command replies than Redis spends running them (about 10x the throughput of a MULTI pipeline).
_PUT_SCRIPT = """
for i = 2, #ARGV, 7 do
    local id = ARGV[i]
    local key = ARGV[1] .. 'session:' .. id
    redis.call('HSET', key, 'record', ARGV[i + 1], 'state', ARGV[i + 5], 'upstream', ARGV[i + 6],
        'last_seen', ARGV[i + 3])
    redis.call('PEXPIREAT', key, ARGV[i + 4])
    redis.call('ZADD', KEYS[1], ARGV[i + 2], id)
    redis.call('ZADD', KEYS[2], ARGV[i + 3], id)
end
return (#ARGV - 1) / 7
"""
# Atomic, so a session refreshed between "find stale" and "delete" is never dropped.
_EXPIRE_SCRIPT = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
    redis.call('DEL', ARGV[2] .. 'session:' .. id, ARGV[2] .. 'events:' .. id)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
end
return #ids
"""


class RedisStore:
    """Sessions in Redis (``redis.asyncio``). Connects lazily on the first command, or in :meth:`open`."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "shadowproxy:",
        ttl: float = 3600.0,
        max_events: int = 1000,
        max_event_age: float = 3600.0,
        display_url: str | None = None,
    ) -> None:
        self.prefix = key_prefix
        self.ttl = ttl
        self.max_events = max_events
        self.max_event_age = max_event_age
        self.display_url = display_url or url
        # The worker retries with backoff itself; one quick retry here only covers a stale pooled connection.
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=5.0, retry=Retry(NoBackoff(), 1)
        )
        self._created = f"{key_prefix}sessions:created"
        self._seen = f"{key_prefix}sessions:seen"
        self._expire = self._redis.register_script(_EXPIRE_SCRIPT)
        self._put = self._redis.register_script(_PUT_SCRIPT)

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def _events_key(self, session_id: str) -> str:
        return f"{self.prefix}events:{session_id}"

    def _error(self, exc: BaseException) -> StoreError:
        return StoreError(f"redis store {self.display_url}: {exc}")

    async def open(self) -> None:
        """Connect now (PING) instead of on first use."""
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc

    def _decode(self, raw: bytes | None, now: float) -> SessionRecord | None:
        if raw is None:
            return None
        record = load_record(raw)
        return record if record.last_seen >= now - self.ttl else None

    async def get(self, session_id: str) -> SessionRecord | None:
        try:
            raw = await self._redis.hget(self._key(session_id), "record")
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc
        return self._decode(raw, time.time())

    async def put_many(self, records: Sequence[SessionRecord]) -> None:
        if not records:
            return
        args: list[str | bytes | float | int] = [self.prefix]
        for r in records:
            expires_ms = int((r.last_seen + self.ttl) * 1000)
            args += (r.id, dump_record(r), r.created_at, r.last_seen, expires_ms, r.state.value, r.upstream)
        try:
            await self._put(keys=[self._created, self._seen], args=args)
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc

    async def delete(self, session_id: str) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(session_id), self._events_key(session_id))
                pipe.zrem(self._created, session_id)
                pipe.zrem(self._seen, session_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc

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
        after = decode_cursor(cursor) if cursor else None
        try:
            matches = await self._scan(wanted, after, limit + 1)
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc
        if len(matches) > limit:
            return matches[:limit], encode_cursor(matches[limit - 1])
        return matches, None

    async def _scan(self, wanted: ListFilter, after: tuple[float, str] | None, want: int) -> list[SessionRecord]:
        """Walk the created index from ``after`` in (score, id) order until ``want`` records match."""
        low: Any = after[0] if after else "-inf"
        offset, found, now = 0, [], time.time()
        while len(found) < want:
            entries = await self._redis.zrangebyscore(
                self._created, low, "+inf", start=offset, num=_SCAN_BATCH, withscores=True
            )
            offset += len(entries)
            ids = [member.decode() for member, score in entries if after is None or (score, member.decode()) > after]
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.hget(self._key(session_id), "record")
                stored = await pipe.execute()
            for raw in stored:
                record = self._decode(raw, now)
                if record is not None and wanted.matches(record):
                    found.append(record)
            if len(entries) < _SCAN_BATCH:
                break
        return found[:want]

    async def expire(self, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - self.ttl
        removed = 0
        try:
            while True:
                count = int(await self._expire(keys=[self._seen, self._created], args=[cutoff, self.prefix, 500]))
                removed += count
                if count < 500:
                    return removed
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc

    async def append_event(self, session_id: str, stream_id: str, data: bytes) -> str:
        key = self._events_key(session_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(key, {"s": stream_id, "d": bytes(data)}, maxlen=self.max_events, approximate=True)
                pipe.pexpire(key, int(max(self.ttl, self.max_event_age) * 1000))
                entry_id, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc
        return make_event_id(stream_id, entry_id.decode())

    async def events_after(self, session_id: str, last_event_id: str) -> list[StoredEvent]:
        parsed = split_event_id(last_event_id)
        if parsed is None or not _ENTRY_ID.fullmatch(parsed[1]):
            return []
        stream_id, position = parsed
        oldest_ms = int((time.time() - self.max_event_age) * 1000)
        key = self._events_key(session_id)
        try:
            anchor = await self._redis.xrange(key, position, position)
            if not anchor or anchor[0][1].get(b"s", b"").decode() != stream_id or _ms(position) < oldest_ms:
                return []
            entries = await self._redis.xrange(key, f"({position}", "+")
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc
        return [
            StoredEvent(make_event_id(stream_id, entry_id.decode()), stream_id, fields[b"d"])
            for entry_id, fields in entries
            if fields.get(b"s", b"").decode() == stream_id and _ms(entry_id.decode()) >= oldest_ms
        ]

    async def entries(self, space: str) -> dict[str, bytes]:
        try:
            found = await self._redis.hgetall(f"{self.prefix}entries:{space}")
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc
        return {key.decode() if isinstance(key, bytes) else key: value for key, value in found.items()}

    async def entry(self, space: str, key: str) -> bytes | None:
        try:
            found = await self._redis.hget(f"{self.prefix}entries:{space}", key)
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc
        return bytes(found) if found is not None else None

    async def put_entry(self, space: str, key: str, value: bytes | None) -> None:
        name = f"{self.prefix}entries:{space}"
        try:
            if value is None:
                await self._redis.hdel(name, key)
            else:
                await self._redis.hset(name, key, value)
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc

    async def close(self) -> None:
        try:
            await self._redis.aclose()
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc


def _ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])
