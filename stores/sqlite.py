"""SQLite backend: one file, WAL mode, one aiosqlite connection that does every write.

The store creates and versions its own schema (``PRAGMA user_version``). A
failed write rolls back and drops the connection, so the next call reopens
the file: a database that was locked, read-only or full works again as soon
as the condition clears, without restarting the proxy.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

from shadowproxy.session import SessionRecord, SessionState
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

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    state TEXT NOT NULL,
    upstream TEXT NOT NULL,
    principal TEXT,
    record BLOB NOT NULL
);
CREATE INDEX sessions_by_created ON sessions (created_at, id);
CREATE INDEX sessions_by_last_seen ON sessions (last_seen);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    at REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX events_by_session ON events (session_id, seq);
CREATE INDEX events_by_at ON events (at);
"""
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

Db = aiosqlite.Connection


class SqliteStore:
    """Sessions in a SQLite file. Connects on first use, or in :meth:`open`."""

    def __init__(
        self,
        path: str,
        *,
        ttl: float = 3600.0,
        max_events: int = 1000,
        max_event_age: float = 3600.0,
        busy_timeout: float = 1.0,
    ) -> None:
        self.path = path
        self.ttl = ttl
        self.max_events = max_events
        self.max_event_age = max_event_age
        self.busy_timeout = busy_timeout
        self._db: Db | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the file and create or check its schema now, instead of on first use."""
        await self._run(_nothing)

    async def _connect(self) -> Db:
        self._check_directory()
        db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await self._migrate(db)
        except BaseException:
            await db.close()
            raise
        return db

    def _check_directory(self) -> None:
        # Checked here, not left to SQLite: a failed aiosqlite.connect leaves its thread reporting to this loop.
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise StoreError(f"sqlite store {self.path}: the directory {directory} does not exist")

    async def _migrate(self, db: Db) -> None:
        await db.execute("BEGIN IMMEDIATE")
        try:
            version = await _scalar(db, "PRAGMA user_version")
            if version == 0:
                if await _scalar(db, "SELECT count(*) FROM sqlite_master"):
                    raise StoreError(f"sqlite store {self.path}: the file holds other tables, not a ShadowProxy store")
                # One statement at a time: executescript would commit the open transaction first.
                for statement in filter(None, (part.strip() for part in _SCHEMA.split(";"))):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise StoreError(
                    f"sqlite store {self.path}: schema version {version} is newer than this ShadowProxy "
                    f"understands ({SCHEMA_VERSION})"
                )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def _run(self, operation: Callable[[Db], Awaitable[T]], *, write: bool = False) -> T:
        """Run ``operation`` on the connection, in one transaction if it writes; map failures to StoreError."""
        async with self._lock:
            try:
                if self._db is None:
                    self._db = await self._connect()
                db = self._db
                if not write:
                    return await operation(db)
                try:
                    await db.execute("BEGIN IMMEDIATE")
                    result = await operation(db)
                    await db.execute("COMMIT")
                except BaseException:
                    # Queued behind whatever a cancellation left running on the connection's thread, so it
                    # also ends a BEGIN that completed after its caller stopped waiting.
                    await _rollback(db)
                    raise
                return result
            except (sqlite3.Error, ValueError) as exc:
                await self._drop_connection()
                raise StoreError(f"sqlite store {self.path}: {exc}") from exc
            except StoreError:
                await self._drop_connection()
                raise

    async def _drop_connection(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                await db.close()
            except sqlite3.Error:
                # Closing checkpoints the WAL, which fails for the same reason the write did.
                pass

    async def get(self, session_id: str) -> SessionRecord | None:
        async def query(db: Db) -> Any:
            sql = "SELECT record FROM sessions WHERE id = ? AND last_seen >= ?"
            async with db.execute(sql, (session_id, time.time() - self.ttl)) as rows:
                return await rows.fetchone()

        row = await self._run(query)
        return None if row is None else load_record(row[0])

    async def put_many(self, records: Sequence[SessionRecord]) -> None:
        if not records:
            return
        rows = [
            (r.id, r.created_at, r.last_seen, r.state.value, r.upstream, r.principal, dump_record(r)) for r in records
        ]
        await self._run(lambda db: db.executemany(_UPSERT, rows), write=True)

    async def delete(self, session_id: str) -> None:
        async def remove(db: Db) -> None:
            await db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            await db.execute("DELETE FROM events WHERE session_id = ?", (session_id,))

        await self._run(remove, write=True)

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

        async def query(db: Db) -> Any:
            async with db.execute(sql, params) as rows:
                return await rows.fetchall()

        page = [load_record(row[0]) for row in await self._run(query)]
        if len(page) > limit:
            return page[:limit], encode_cursor(page[limit - 1])
        return page, None

    async def expire(self, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - self.ttl

        async def remove(db: Db) -> int:
            sql = "DELETE FROM events WHERE session_id IN (SELECT id FROM sessions WHERE last_seen < ?)"
            await db.execute(sql, (cutoff,))
            await db.execute("DELETE FROM events WHERE at < ?", (time.time() - self.max_event_age,))
            async with db.execute("DELETE FROM sessions WHERE last_seen < ?", (cutoff,)) as done:
                return done.rowcount

        return await self._run(remove, write=True)

    async def append_event(self, session_id: str, stream_id: str, data: bytes) -> str:
        async def insert(db: Db) -> int:
            sql = "INSERT INTO events (session_id, stream_id, at, data) VALUES (?, ?, ?, ?)"
            async with db.execute(sql, (session_id, stream_id, time.time(), bytes(data))) as done:
                seq = done.lastrowid
            await db.execute(_TRIM_COUNT, (session_id, session_id, self.max_events))
            return int(seq or 0)

        return make_event_id(stream_id, str(await self._run(insert, write=True)))

    async def events_after(self, session_id: str, last_event_id: str) -> list[StoredEvent]:
        parsed = split_event_id(last_event_id)
        if parsed is None or not parsed[1].isdigit():
            return []
        stream_id, seq = parsed[0], int(parsed[1])
        cutoff = time.time() - self.max_event_age

        async def query(db: Db) -> Any:
            known = "SELECT 1 FROM events WHERE seq = ? AND session_id = ? AND stream_id = ? AND at >= ?"
            if await _scalar(db, known, (seq, session_id, stream_id, cutoff)) is None:
                return []
            later = (
                "SELECT seq, data FROM events WHERE session_id = ? AND stream_id = ? AND seq > ? AND at >= ?"
                " ORDER BY seq"
            )
            async with db.execute(later, (session_id, stream_id, seq, cutoff)) as rows:
                return await rows.fetchall()

        return [StoredEvent(make_event_id(stream_id, str(row[0])), stream_id, row[1]) for row in await self._run(query)]

    async def close(self) -> None:
        async with self._lock:
            await self._drop_connection()


async def _nothing(db: Db) -> None:
    return None


async def _scalar(db: Db, sql: str, params: Sequence[Any] = ()) -> Any:
    async with db.execute(sql, params) as rows:
        row = await rows.fetchone()
    return None if row is None else row[0]


async def _rollback(db: Db) -> None:
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError:
        # No transaction to end: the BEGIN never ran, or the COMMIT did.
        pass
