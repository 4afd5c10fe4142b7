"""The SQLite process of a :class:`~shadowproxy.stores.sqlite.SqliteStore`: it holds the one connection to the
file, creates and versions the schema, and runs each request's statements in one transaction.

Requests and replies are ``marshal`` frames behind a 4-byte length on its stdin and stdout. Why a process at all
is in :mod:`shadowproxy.stores.sqlite`.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import sqlite3
import struct
import sys
from collections.abc import Sequence
from typing import IO, Any

from shadowproxy.stores.base import StoreError

SCHEMA_VERSION = 2
_SESSIONS_AND_EVENTS = """
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
_ENTRIES = """
CREATE TABLE entries (
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (space, key)
)
"""
"""Version 2: small documents beside the sessions (the tool pins); a version 1 file gets the table on open."""
_SCHEMA = _SESSIONS_AND_EVENTS + _ENTRIES
SIZE = struct.Struct("!I")

# One statement for the child: SQL, its parameters, and whether they are a sequence for ``executemany``.
Step = tuple[str, Sequence[Any], bool]


class _Connection:
    """The child's side: one sqlite3 connection, opened when needed and dropped after any failure."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.db: sqlite3.Connection | None = None

    def run(self, write: bool, steps: list[Step]) -> list[Any]:
        db = self.db or self._connect()
        if not write and len(steps) < 2:
            return [_execute(db, step) for step in steps]
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            results = [_execute(db, step) for step in steps]
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        return results

    def _connect(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise StoreError(f"the directory {directory} does not exist")
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        self.db = db
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise StoreError("the file holds other tables, not a ShadowProxy store")
                # One statement at a time: executescript would commit the open transaction first.
                for statement in filter(None, (part.strip() for part in _SCHEMA.split(";"))):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version == 1:
                db.execute(_ENTRIES)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise StoreError(
                    f"schema version {version} is newer than this ShadowProxy understands ({SCHEMA_VERSION})"
                )
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def drop(self) -> None:
        db, self.db = self.db, None
        if db is not None:
            # Closing checkpoints the WAL, which fails for the same reason the statement did.
            with contextlib.suppress(sqlite3.Error):
                db.close()


def _rollback(db: sqlite3.Connection) -> None:
    # Silent: the failure that led here is the one to report, and a connection past saving is dropped next.
    with contextlib.suppress(sqlite3.Error):
        db.execute("ROLLBACK")


def _execute(db: sqlite3.Connection, step: Step) -> Any:
    sql, params, many = step
    cursor = db.executemany(sql, params) if many else db.execute(sql, params)
    return cursor.fetchall() if cursor.description else (cursor.lastrowid, cursor.rowcount)


def _serve(path: str, busy_timeout: float, requests: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: a request in, its reply out, until the store closes the pipe or its process ends."""
    connection = _Connection(path, busy_timeout)
    try:
        while len(header := requests.read(SIZE.size)) == SIZE.size:
            write, steps = marshal.loads(requests.read(SIZE.unpack(header)[0]))
            try:
                reply: tuple[bool, Any] = (True, connection.run(write, steps))
            except Exception as exc:
                connection.drop()
                reply = (False, str(exc) if isinstance(exc, sqlite3.Error | StoreError) else repr(exc))
            frame = marshal.dumps(reply)
            replies.write(SIZE.pack(len(frame)) + frame)
            replies.flush()
    except BrokenPipeError:
        pass
    finally:
        connection.drop()


if __name__ == "__main__":
    # The proxy's shutdown (Ctrl-C to the process group, systemd's SIGTERM to the cgroup) ends with a last flush
    # through this process, so it outlives those signals and stops when the proxy closes its input, or dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform != "win32":
        import resource

        # A store that keeps failing restarts this process every few seconds: no core file each time.
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    _serve(sys.argv[1], float(sys.argv[2]), sys.stdin.buffer, sys.stdout.buffer)
