"""SQLite backend: one file in WAL mode, every statement run by a SQLite process of the store's own.

Why a process: in WAL mode SQLite maps the ``-shm`` index into memory, and when a write to a mapped page fails
(the file made immutable, truncated by someone else, its filesystem remounted read-only after a disk error) the
kernel sends SIGBUS, which Python cannot catch: in the proxy's process that ended every session, logging nothing.
In a child it is one more :class:`StoreError`: the persistence worker keeps the changes in memory and retries,
and the next operation starts a new child, no sooner than a backoff allows. Weighed and left:

* ``PRAGMA locking_mode=EXCLUSIVE`` keeps the index on the heap, but locks the file for as long as the proxy
  runs: ``shadowproxy sessions``, any other reader, and several stdio proxies sharing one file (one per MCP
  client) would get "database is locked".
* Checking the three files before each batch races with whatever changes them and misses a truncation;
  ``PRAGMA mmap_size=0`` leaves ``-shm`` mapped; a rollback journal maps nothing, but a one-row commit (an event
  log append) then costs 0.6-4 ms instead of 50 us.

The child costs a Python process (about 24 MB resident) per open store and one pipe round trip per operation,
which measured half the latency of three hops to an aiosqlite thread (BEGIN, statement, COMMIT). A failed
statement rolls back and drops the child's connection, so a database that was locked, read-only or full works
again once the condition clears. The store creates and versions its own schema (``PRAGMA user_version``).
"""

from __future__ import annotations

import asyncio
import marshal
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.stores.base import (
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
from shadowproxy.stores.sqlite_process import SIZE, Step

_UPSERT = (
    "INSERT INTO sessions (id, created_at, last_seen, state, upstream, principal, record)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, last_seen = excluded.last_seen,"
    " state = excluded.state, upstream = excluded.upstream, principal = excluded.principal, record = excluded.record"
)
_TRIM_COUNT = (
    "DELETE FROM events WHERE session_id = ? AND seq <= "
    "(SELECT seq FROM events WHERE session_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)"
)
_MODULE = "shadowproxy.stores.sqlite_process"
_RESPAWN_FIRST, _RESPAWN_MAX = 0.05, 2.0


class SqliteStore:
    """Sessions in a SQLite file. Its process starts on first use, or in :meth:`open`, and again after it dies."""

    def __init__(
        self,
        path: str,
        *,
        ttl: float = 3600.0,
        max_events: int = 1000,
        max_event_age: float = 3600.0,
        busy_timeout: float = 1.0,
        answer_within: float = 30.0,
    ) -> None:
        self.path = path
        self.ttl = ttl
        self.max_events = max_events
        self.max_event_age = max_event_age
        self.busy_timeout = busy_timeout
        self.answer_within = answer_within
        self._child: asyncio.subprocess.Process | None = None
        # Replies the child still owes to callers that were cancelled while waiting: read and dropped first.
        self._owed = 0
        self._deaths = 0
        self._respawn_at = 0.0
        self._death = ""
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Start the process, open the file and create or check its schema now, instead of on first use."""
        await self._call([])

    async def _call(self, steps: list[Step], *, write: bool = False) -> list[Any]:
        """Run ``steps`` in the child (in one transaction if they write); one result per step."""
        try:
            request = marshal.dumps((write, steps))
        except ValueError as exc:
            raise StoreError(f"sqlite store {self.path}: a value cannot be stored: {exc}") from None
        async with self._lock:
            child = self._child or await self._spawn()
            assert child.stdin is not None and child.stdout is not None
            try:
                async with asyncio.timeout(self.answer_within):
                    while self._owed:
                        await _read_frame(child.stdout)
                        self._owed -= 1
                    child.stdin.write(SIZE.pack(len(request)) + request)
                    self._owed += 1
                    await child.stdin.drain()
                    ok, result = marshal.loads(await _read_frame(child.stdout))
                    self._owed -= 1
            except TimeoutError:
                child.kill()
                await self._buried(child, f"no answer from the SQLite process within {self.answer_within:g}s")
            except (asyncio.IncompleteReadError, ConnectionError):
                await self._buried(child, None)
            self._deaths = 0
        if not ok:
            raise StoreError(f"sqlite store {self.path}: {result}")
        return list(result)

    async def _spawn(self) -> asyncio.subprocess.Process:
        if time.monotonic() < self._respawn_at:
            raise StoreError(self._death)
        command = (sys.executable, "-m", _MODULE, self.path, str(self.busy_timeout))
        pipe = asyncio.subprocess.PIPE
        try:
            self._child = await asyncio.create_subprocess_exec(*command, stdin=pipe, stdout=pipe)
        except OSError as exc:
            self._note_death(f"sqlite store {self.path}: cannot start the SQLite process: {exc}")
            raise StoreError(self._death) from None
        self._owed = 0
        return self._child

    async def _buried(self, child: asyncio.subprocess.Process, why: str | None) -> NoReturn:
        """Forget a child that died or hung, and raise what happened to it."""
        self._child = None
        try:
            async with asyncio.timeout(self.answer_within):
                code = await child.wait()
        except TimeoutError:
            child.kill()
            code = None
        if why is None:
            why = _ending(code)
        self._note_death(f"sqlite store {self.path}: {why}")
        raise StoreError(self._death)

    def _note_death(self, message: str) -> None:
        self._death = message
        self._deaths += 1
        self._respawn_at = time.monotonic() + min(_RESPAWN_MAX, _RESPAWN_FIRST * 2 ** (self._deaths - 1))

    async def get(self, session_id: str) -> SessionRecord | None:
        sql = "SELECT record FROM sessions WHERE id = ? AND last_seen >= ?"
        (rows,) = await self._call([(sql, (session_id, time.time() - self.ttl), False)])
        return load_record(rows[0][0]) if rows else None

    async def put_many(self, records: Sequence[SessionRecord]) -> None:
        if not records:
            return
        rows = [
            (r.id, r.created_at, r.last_seen, r.state.value, r.upstream, r.principal, dump_record(r)) for r in records
        ]
        await self._call([(_UPSERT, rows, True)], write=True)

    async def delete(self, session_id: str) -> None:
        steps: list[Step] = [
            ("DELETE FROM sessions WHERE id = ?", (session_id,), False),
            ("DELETE FROM events WHERE session_id = ?", (session_id,), False),
        ]
        await self._call(steps, write=True)

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
        where, params = ["last_seen >= ?"], [time.time() - self.ttl]
        filters = (("state", state.value if state else None), ("upstream", upstream), ("principal", principal))
        for column, value in filters:
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if cursor:
            where.append("(created_at, id) > (?, ?)")
            params.extend(decode_cursor(cursor))
        sql = f"SELECT record FROM sessions WHERE {' AND '.join(where)} ORDER BY created_at, id LIMIT ?"
        params.append(limit + 1)
        (rows,) = await self._call([(sql, params, False)])
        page = [load_record(row[0]) for row in rows]
        if len(page) > limit:
            return page[:limit], encode_cursor(page[limit - 1])
        return page, None

    async def expire(self, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - self.ttl
        steps: list[Step] = [
            ("DELETE FROM events WHERE session_id IN (SELECT id FROM sessions WHERE last_seen < ?)", (cutoff,), False),
            ("DELETE FROM events WHERE at < ?", (time.time() - self.max_event_age,), False),
            ("DELETE FROM sessions WHERE last_seen < ?", (cutoff,), False),
        ]
        *_, (_, removed) = await self._call(steps, write=True)
        return int(removed)

    async def append_event(self, session_id: str, stream_id: str, data: bytes) -> str:
        insert = "INSERT INTO events (session_id, stream_id, at, data) VALUES (?, ?, ?, ?)"
        steps: list[Step] = [
            (insert, (session_id, stream_id, time.time(), bytes(data)), False),
            (_TRIM_COUNT, (session_id, session_id, self.max_events), False),
        ]
        (seq, _), _ = await self._call(steps, write=True)
        return make_event_id(stream_id, str(int(seq or 0)))

    async def events_after(self, session_id: str, last_event_id: str) -> list[StoredEvent]:
        parsed = split_event_id(last_event_id)
        if parsed is None or not parsed[1].isdigit():
            return []
        stream_id, seq = parsed[0], int(parsed[1])
        cutoff = time.time() - self.max_event_age
        known = "SELECT 1 FROM events WHERE seq = ? AND session_id = ? AND stream_id = ? AND at >= ?"
        later = (
            "SELECT seq, data FROM events WHERE session_id = ? AND stream_id = ? AND seq > ? AND at >= ? ORDER BY seq"
        )
        anchor, rows = await self._call(
            [(known, (seq, session_id, stream_id, cutoff), False), (later, (session_id, stream_id, seq, cutoff), False)]
        )
        if not anchor:
            return []
        return [StoredEvent(make_event_id(stream_id, str(row[0])), stream_id, row[1]) for row in rows]

    async def entries(self, space: str) -> dict[str, bytes]:
        (rows,) = await self._call([("SELECT key, value FROM entries WHERE space = ?", (space,), False)])
        return {row[0]: bytes(row[1]) for row in rows}

    async def entry(self, space: str, key: str) -> bytes | None:
        (rows,) = await self._call([("SELECT value FROM entries WHERE space = ? AND key = ?", (space, key), False)])
        return bytes(rows[0][0]) if rows else None

    async def put_entry(self, space: str, key: str, value: bytes | None) -> None:
        if value is None:
            step: Step = ("DELETE FROM entries WHERE space = ? AND key = ?", (space, key), False)
        else:
            upsert = (
                "INSERT INTO entries (space, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (space, key) DO UPDATE SET value = excluded.value"
            )
            step = (upsert, (space, key, bytes(value)), False)
        await self._call([step], write=True)

    async def close(self) -> None:
        """End the child: it closes the file (checkpointing the WAL) once its input ends."""
        async with self._lock:
            child, self._child = self._child, None
            if child is None:
                return
            assert child.stdin is not None and child.stdout is not None
            child.stdin.close()
            try:
                async with asyncio.timeout(self.answer_within):
                    await child.stdout.read()  # owed replies, which could otherwise block its exit
                    await child.wait()
            except TimeoutError:
                child.kill()  # not waited for: a process stuck in the kernel (a hung disk) may never go


async def _read_frame(stream: asyncio.StreamReader) -> bytes:
    (size,) = SIZE.unpack(await stream.readexactly(SIZE.size))
    return await stream.readexactly(size)


def _ending(code: int | None) -> str:
    if code is None:
        return "the SQLite process stopped answering and would not exit"
    if code >= 0:
        return f"the SQLite process exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if name == "SIGBUS":
        name += (
            ": a memory-mapped file of the store (its -shm index) could not be written or read"
            " (immutable, truncated, or on a read-only or failing disk?)"
        )
    return f"the SQLite process ended with {name}"
