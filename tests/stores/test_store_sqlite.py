"""SQLite specifics: schema versioning, WAL, refusing files that are not ours, a second reader."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shadowproxy.core.record import SessionRecord
from shadowproxy.stores import StoreError, open_store
from shadowproxy.stores.sqlite import SqliteStore
from shadowproxy.stores.sqlite_process import SCHEMA_VERSION


async def test_schema_is_created_versioned_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite://{path}")
    assert not path.exists()  # lazy: nothing touched before first use
    await store.put_many([SessionRecord(id="a")])
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"sessions", "events"} <= tables


async def test_newer_schema_is_refused_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = open_store(f"sqlite://{path}")
    with pytest.raises(StoreError, match=rf"{path}: schema version {SCHEMA_VERSION + 1} is newer"):
        await store.open()
    await store.close()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages you are looking for" * 100)
    store = open_store(f"sqlite://{path}")
    with pytest.raises(StoreError, match=rf"sqlite store {path}: file is not a database"):
        await store.get("x")
    await store.close()


async def test_a_database_with_other_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER)")
    store = open_store(f"sqlite://{path}")
    with pytest.raises(StoreError, match="holds other tables"):
        await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0


async def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/no/such/dir/s.db")
    with pytest.raises(StoreError, match=r"s\.db: the directory .*/no/such/dir does not exist"):
        await store.open()
    await store.close()


async def test_another_process_can_read_while_the_store_is_open(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite://{path}")
    await store.put_many([SessionRecord(id=f"r{n}") for n in range(3)])
    reader = open_store(f"sqlite://{path}")
    page, _ = await reader.list()
    assert [r.id for r in page] == ["r0", "r1", "r2"]
    await store.put_many([SessionRecord(id="r3")])
    assert await reader.get("r3") is not None
    await reader.close()
    await store.close()


async def test_two_writers_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first, second = SqliteStore(str(path), busy_timeout=5), SqliteStore(str(path), busy_timeout=5)
    for n in range(30):
        await (first if n % 2 else second).put_many([SessionRecord(id=f"w{n}", messages=n)])
    page, _ = await first.list(limit=100)
    assert sorted(r.messages for r in page) == list(range(30))
    await first.close()
    await second.close()


async def test_a_locked_database_fails_fast_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(str(path), busy_timeout=0.05)
    await store.open()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreError, match="database is locked"):
        await store.put_many([SessionRecord(id="blocked")])
    locker.execute("ROLLBACK")
    locker.close()
    await store.put_many([SessionRecord(id="blocked")])
    assert await store.get("blocked") is not None
    await store.close()
