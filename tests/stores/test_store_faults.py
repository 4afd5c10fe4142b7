"""Fault tests against real servers and files: the worker keeps going and loses nothing it was given.

* Redis is SIGKILLed mid-run and restarted on the same port (it saves nothing, so it comes back empty):
  every session change made while it was down, and after, ends up in Redis.
* The SQLite file is made read-only mid-run (``chattr +i``, which binds root too): same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.sessions.persistence import PersistenceWorker
from shadowproxy.stores import SessionStore, open_store
from tests.redis_server import RedisServer


async def wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


class Traffic:
    """Session changes as the hot path makes them: new sessions, message counts, tags, closes."""

    def __init__(self, worker: PersistenceWorker) -> None:
        self.worker = worker
        self.sessions: dict[str, SessionRecord] = {}
        self.touched: set[str] = set()
        self.step = 0

    def tick(self) -> None:
        self.step += 1
        sid = f"s{self.step % 40:02d}"
        record = self.sessions.get(sid)
        if record is None:
            record = self.sessions[sid] = SessionRecord(id=sid, state=SessionState.ACTIVE, principal="p")
        record.messages += 1
        record.last_seen = time.time()
        if self.step % 7 == 0:
            record.add_tag(f"t{self.step}")
        if self.step % 50 == 0:
            record.state = SessionState.CLOSED
        self.worker.record(record)
        self.touched.add(sid)

    async def run(self, count: int) -> None:
        for _ in range(count):
            self.tick()
            await asyncio.sleep(0)

    async def assert_stored(self, store: SessionStore, ids: set[str]) -> None:
        assert ids, "the scenario touched no sessions"
        for sid in sorted(ids):
            stored = await store.get(sid)
            expected = self.sessions[sid]
            assert stored is not None, f"{sid} missing from the store"
            assert (stored.messages, stored.tags, stored.state) == (expected.messages, expected.tags, expected.state)


async def test_redis_killed_mid_run_and_restarted(fresh_redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="shadowproxy.sessions.persistence")
    store = open_store(fresh_redis.url, key_prefix="fault:")
    worker = PersistenceWorker(store, flush_interval=0.01, retry_initial=0.01, retry_max=0.1)
    await worker.start()
    traffic = Traffic(worker)
    await traffic.run(200)
    await wait_until(lambda: worker.stats.queue_depth == 0)
    await traffic.assert_stored(store, traffic.touched)

    fresh_redis.kill()
    traffic.touched.clear()
    failures = worker.stats.failures
    while worker.stats.failures < failures + 3:  # keep serving while the store is down
        await traffic.run(20)
    recorded = worker.stats.recorded
    await traffic.run(500)
    assert worker.stats.recorded == recorded + 500 and worker.stats.dropped == 0
    assert worker.stats.queue_depth > 0

    fresh_redis.start()
    await traffic.run(100)
    await wait_until(lambda: worker.stats.queue_depth == 0)
    await traffic.assert_stored(store, traffic.touched)
    assert worker.stats.retries >= 3
    assert "Connect call failed" in caplog.text or "Connection refused" in caplog.text
    await worker.stop()
    await store.close()


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Make files read-only even for root (``chattr +i``); always undone so tmp_path can be removed."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    if shutil.which("chattr") is None or os.geteuid() != 0:
        pytest.skip("needs root and chattr to make a file read-only for the store's own open handle")
    try:
        _chattr("+i", probe)
        _chattr("-i", probe)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"this filesystem does not support chattr +i: {exc.stderr!r}")
    locked: list[Path] = []

    def make(*paths: Path) -> None:
        _chattr("+i", *paths)
        locked.extend(paths)

    yield make
    # Only what is still there: a store that closed cleanly has checkpointed and removed its WAL.
    if existing := [path for path in locked if path.exists()]:
        _chattr("-i", *existing)


async def test_sqlite_file_made_read_only_mid_run(
    tmp_path: Path, immutable: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="shadowproxy.sessions.persistence")
    path = tmp_path / "sessions.db"
    store = open_store(f"sqlite://{path}")
    worker = PersistenceWorker(store, flush_interval=0.01, retry_initial=0.01, retry_max=0.1)
    await worker.start()
    traffic = Traffic(worker)
    await traffic.run(200)
    await wait_until(lambda: worker.stats.queue_depth == 0)

    # The database and its WAL; not the -shm file, which SQLite maps into memory.
    immutable(path, Path(f"{path}-wal"))
    traffic.touched.clear()
    failures = worker.stats.failures
    while worker.stats.failures < failures + 3:
        await traffic.run(20)
    await traffic.run(300)
    assert worker.stats.queue_depth > 0 and worker.stats.dropped == 0
    assert "disk I/O error" in caplog.text or "readonly" in caplog.text

    _chattr("-i", path, Path(f"{path}-wal"))
    await traffic.run(50)
    await wait_until(lambda: worker.stats.queue_depth == 0)
    await worker.stop()
    await store.close()
    reopened = open_store(f"sqlite://{path}")
    await traffic.assert_stored(reopened, set(traffic.sessions))
    await reopened.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of our own, so the disk can really fill up."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; return it (deleting it frees the space)."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


async def test_sqlite_disk_full_mid_run(small_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="shadowproxy.sessions.persistence")
    path = small_disk / "sessions.db"
    store = open_store(f"sqlite://{path}")
    worker = PersistenceWorker(store, flush_interval=0.01, retry_initial=0.01, retry_max=0.1)
    await worker.start()
    traffic = Traffic(worker)
    await traffic.run(200)
    await wait_until(lambda: worker.stats.queue_depth == 0)

    filler = fill(small_disk)
    failures = worker.stats.failures
    while worker.stats.failures < failures + 3:
        for record in traffic.sessions.values():  # big records, so every write needs new pages
            record.client_info = {"blob": "x" * 20_000, "step": traffic.step}
        await traffic.run(20)
    assert worker.stats.queue_depth > 0 and worker.stats.dropped == 0
    assert "database or disk is full" in caplog.text

    filler.unlink()
    await traffic.run(50)
    await wait_until(lambda: worker.stats.queue_depth == 0)
    await worker.stop()
    await traffic.assert_stored(store, set(traffic.sessions))
    await store.close()
