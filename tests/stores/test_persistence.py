"""The persistence worker against real stores: coalescing, batching, snapshots, backoff, shutdown."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.sessions.persistence import PersistenceWorker
from shadowproxy.stores import SessionStore, open_store
from shadowproxy.stores.sqlite import SqliteStore


async def wait_until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``condition`` on the event loop; fail the test if it does not hold ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    store = open_store("memory://" if request.param == "memory" else f"sqlite://{tmp_path / 'p.db'}")
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "p.db"), busy_timeout=0.02)
    await store.open()
    yield store
    await store.close()


async def test_changes_are_coalesced_to_the_latest_state(store: SessionStore) -> None:
    worker = PersistenceWorker(store, batch_size=100)
    sessions = [SessionRecord(id=f"s{n}") for n in range(10)]
    for round_ in range(100):
        for record in sessions:
            record.messages = round_
            record.last_seen = time.time()
            worker.record(record)
    assert worker.stats.queue_depth == 10 and worker.stats.recorded == 1000
    await worker.flush()
    assert worker.stats.written == 10 and worker.stats.batches == 1 and worker.stats.queue_depth == 0
    for record in sessions:
        stored = await store.get(record.id)
        assert stored is not None and stored.messages == 99


async def test_the_flush_writes_the_latest_state_and_later_changes_do_not_leak(store: SessionStore) -> None:
    worker = PersistenceWorker(store)
    record = SessionRecord(id="snap", tags=["a"], messages=1)
    worker.record(record)
    record.messages = 2
    record.add_tag("b")
    record.state = SessionState.CLOSED
    await worker.flush()
    stored = await store.get("snap")
    assert stored is not None
    assert (stored.messages, stored.tags, stored.state) == (2, ["a", "b"], SessionState.CLOSED)
    record.messages = 3
    record.add_tag("c")
    stored = await store.get("snap")
    assert stored is not None and (stored.messages, stored.tags) == (2, ["a", "b"])


async def test_large_backlog_is_written_in_batches(store: SessionStore) -> None:
    worker = PersistenceWorker(store, batch_size=64)
    for n in range(1000):
        worker.record(SessionRecord(id=f"s{n:04d}"))
    await worker.flush()
    stats = worker.stats
    assert (stats.written, stats.batches, stats.last_batch_size) == (1000, 16, 1000 - 15 * 64)
    page, _ = await store.list(limit=1000)
    assert len(page) == 1000


async def test_worker_flushes_on_its_own_every_interval(store: SessionStore) -> None:
    worker = PersistenceWorker(store, flush_interval=0.02)
    await worker.start()
    worker.record(SessionRecord(id="tick"))
    await wait_until(lambda: worker.stats.written == 1)
    assert await store.get("tick") is not None
    await worker.stop()


async def test_a_full_batch_is_written_without_waiting_for_the_interval(store: SessionStore) -> None:
    worker = PersistenceWorker(store, flush_interval=3600, batch_size=20)
    await worker.start()
    for n in range(19):
        worker.record(SessionRecord(id=f"s{n}"))
    await asyncio.sleep(0.05)
    assert worker.stats.written == 0  # below batch_size: waits for the (hour-long) interval
    worker.record(SessionRecord(id="s19"))
    await wait_until(lambda: worker.stats.written == 20)
    await worker.stop()


async def test_full_queue_coalesces_then_drops_only_new_sessions(store: SessionStore) -> None:
    worker = PersistenceWorker(store, batch_size=5, max_pending=5)
    sessions = [SessionRecord(id=f"s{n}") for n in range(5)]
    for record in sessions:
        worker.record(record)
    sessions[0].messages = 7
    worker.record(sessions[0])
    worker.record(SessionRecord(id="one-too-many"))
    assert (worker.stats.queue_depth, worker.stats.dropped) == (5, 1)
    await worker.flush()
    stored = await store.get("s0")
    assert stored is not None and stored.messages == 7
    assert await store.get("one-too-many") is None


async def test_record_never_raises(store: SessionStore) -> None:
    worker = PersistenceWorker(store)
    worker.record(None)  # type: ignore[arg-type]
    worker.record("not a session")  # type: ignore[arg-type]
    assert worker.stats.dropped == 2 and worker.stats.queue_depth == 0


async def test_stop_flushes_everything_pending(store: SessionStore) -> None:
    worker = PersistenceWorker(store, flush_interval=3600)
    await worker.start()
    for n in range(50):
        worker.record(SessionRecord(id=f"s{n}", state=SessionState.CLOSED))
    await worker.stop()
    closed, _ = await store.list(state=SessionState.CLOSED, limit=100)
    assert len(closed) == 50 and worker.stats.queue_depth == 0


async def test_a_locked_store_is_retried_with_backoff_and_nothing_is_lost(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    worker = PersistenceWorker(sqlite_store, flush_interval=0.01, retry_initial=0.01, retry_max=0.05)
    await worker.start()
    locker = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    record = SessionRecord(id="patient")
    for n in range(30):
        record.messages = n
        worker.record(record)
        await asyncio.sleep(0)
    await wait_until(lambda: worker.stats.failures >= 3 and worker.stats.retries >= 2)
    assert worker.stats.queue_depth == 1 and worker.stats.written == 0
    record.messages = 100
    worker.record(record)  # the hot path goes on while the store is down
    locker.execute("ROLLBACK")
    locker.close()
    await wait_until(lambda: worker.stats.queue_depth == 0)
    stored = await sqlite_store.get("patient")
    assert stored is not None and stored.messages == 100
    await worker.stop()


async def test_stop_gives_up_after_its_timeout_and_counts_the_loss(
    sqlite_store: SqliteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = PersistenceWorker(sqlite_store, stop_timeout=0.3, retry_initial=0.01)
    locker = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    worker.record(SessionRecord(id="a"))
    worker.record(SessionRecord(id="b"))
    with caplog.at_level(logging.ERROR, logger="shadowproxy.sessions.persistence"):
        await worker.stop()
    locker.execute("ROLLBACK")
    locker.close()
    assert worker.stats.dropped == 2 and worker.stats.failures >= 1
    assert "2 session changes lost" in caplog.text and "queue full" not in caplog.text


async def test_flush_raises_the_store_error_and_keeps_the_changes(sqlite_store: SqliteStore, tmp_path: Path) -> None:
    worker = PersistenceWorker(sqlite_store)
    locker = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    worker.record(SessionRecord(id="kept"))
    with pytest.raises(Exception, match="database is locked"):
        await worker.flush()
    assert worker.stats.queue_depth == 1
    locker.execute("ROLLBACK")
    locker.close()
    await worker.flush()
    assert await sqlite_store.get("kept") is not None


async def test_idle_sessions_are_expired_by_the_worker(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path / 'e.db'}", ttl=60)
    await store.put_many([SessionRecord(id="idle", last_seen=time.time() - 120), SessionRecord(id="busy")])
    worker = PersistenceWorker(store, flush_interval=0.01, expire_interval=0.01)
    await worker.start()
    worker.record(SessionRecord(id="busy"))

    async def idle_gone() -> bool:
        page, _ = await store.list()  # get() hides it already; list and count come from the table
        return len(page) == 1 and await store.expire() == 0

    deadline = time.monotonic() + 10
    while not await idle_gone():
        assert time.monotonic() < deadline, "the worker never expired the idle session"
        await asyncio.sleep(0.01)
    await worker.stop()
    await store.close()


async def test_metrics_are_published(store: SessionStore) -> None:
    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    written, batches = (
        sample("shadowproxy_persistence_records_written_total"),
        sample("shadowproxy_persistence_batch_size_count"),
    )
    worker = PersistenceWorker(store, flush_interval=0.01)
    await worker.start()
    for n in range(3):
        worker.record(SessionRecord(id=f"m{n}"))
    await wait_until(lambda: worker.stats.written == 3)
    await worker.stop()
    assert sample("shadowproxy_persistence_records_written_total") == written + 3
    assert sample("shadowproxy_persistence_batch_size_count") > batches
    assert sample("shadowproxy_persistence_queue_depth") == 0
    assert REGISTRY.get_sample_value("shadowproxy_persistence_flush_seconds_count") is not None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        PersistenceWorker(open_store("memory://"), batch_size=0)
    with pytest.raises(ValueError, match="max_pending"):
        PersistenceWorker(open_store("memory://"), batch_size=10, max_pending=5)
