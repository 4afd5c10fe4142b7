"""A store that fails under a running proxy: the proxy serves on from memory, says so, and catches up after.

* The SQLite database, its WAL and its ``-shm`` index made immutable (``chattr +i``) while sessions are live.
  SQLite maps ``-shm`` into memory, and a write to a mapped page of an immutable file is a SIGBUS: before the
  store ran SQLite in a process of its own, that ended the proxy (exit -7) with nothing logged.
* Redis killed mid-run and started again: the same story, told the same way in ``/readyz`` and the log.
* A store down when the proxy starts: reported from the start, written to once it is there.
* A store down long enough to fill the worker's queue: new sessions are dropped within its bound, and that is
  logged once when it begins and once when it ends, not at every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from shadowproxy.core.record import SessionRecord
from shadowproxy.sessions.persistence import PersistenceWorker
from shadowproxy.stores import open_store
from shadowproxy.stores.sqlite import SqliteStore
from tests.faults.helpers import RawClient, readyz, text_of
from tests.redis_server import RedisServer, RedisUnavailable, missing
from tests.support import ProxyProcess, sdk_server_command, until

FAILED = "session store failing"
RECOVERED = "session store recovered"


def chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    """Where the store goes; any of its files left immutable by a failing test is made writable again."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    if shutil.which("chattr") is None or os.geteuid() != 0:
        pytest.skip("needs root and chattr to make the store's files read-only for the proxy's open handles")
    try:
        chattr("+i", probe)
        chattr("-i", probe)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"this filesystem does not support chattr +i: {exc.stderr!r}")
    path = tmp_path / "sessions.db"
    yield path
    subprocess.run(["chattr", "-i", *(f"{path}{suffix}" for suffix in ("", "-wal", "-shm"))], capture_output=True)


READ = """
import json, sqlite3, sys
with sqlite3.connect(sys.argv[1]) as db:
    print(json.dumps({id: json.loads(record) for id, record in db.execute("SELECT id, record FROM sessions")}))
"""


def stored(path: Path) -> dict[str, dict[str, Any]]:
    """Every session record in the SQLite file, read by another process: a SIGBUS there cannot end the test."""
    done = subprocess.run([sys.executable, "-c", READ, str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"reading {path} failed ({done.returncode}): {done.stderr}"
    return orjson.loads(done.stdout)  # type: ignore[no-any-return]


async def call(client: RawClient, text: str, proxy: ProxyProcess) -> None:
    """Call ``echo``; a proxy that died under the call is named as such, with its exit status and log."""
    try:
        status, messages = await client.call("echo", text=text)
    except aiohttp.ClientError:
        await died(proxy)
        raise
    assert status == 200 and text_of(messages[-1]) == text, messages


async def died(proxy: ProxyProcess) -> None:
    assert proxy.proc is not None
    try:
        code = await proxy.wait(5)
    except TimeoutError:
        return
    pytest.fail(f"the proxy died with exit status {code}; its log ends:\n{proxy.log()[-2000:]}")


async def begin(http: aiohttp.ClientSession, proxy: ProxyProcess) -> RawClient:
    try:
        return await RawClient(http, proxy.url).initialize()
    except aiohttp.ClientError:
        await died(proxy)
        raise


async def store_report(proxy: ProxyProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/readyz") as response:
        body = await response.json()
        body["http_status"] = response.status
        return body  # type: ignore[no-any-return]


async def test_immutable_sqlite_files_under_live_sessions(start_proxy, database: Path) -> None:  # type: ignore[no-untyped-def]
    path = database
    upstream = shlex.join(sdk_server_command())
    proxy: ProxyProcess = await start_proxy("--upstream", upstream, "--store", f"sqlite://{path}")
    async with aiohttp.ClientSession() as http:
        first = await begin(http, proxy)
        await call(first, "before", proxy)
        await until(lambda: first.session_id in stored(path), "the first session to reach the file")
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        assert all(file.exists() for file in files), os.listdir(path.parent)
        chattr("+i", *files)

        for index in range(5):
            await call(first, f"read-only {index}", proxy)
        second = await begin(http, proxy)
        await call(second, "new while read-only", proxy)

        async def failing_for_a_while() -> bool:
            store = (await store_report(proxy)).get("store", {})
            return store.get("status") == "failing" and store.get("failed_attempts", 0) >= 3

        await until(failing_for_a_while, "/readyz to report the store failing after several attempts")
        assert proxy.proc is not None and proxy.proc.returncode is None, f"the proxy died: {proxy.log()[-2000:]}"
        report = await store_report(proxy)
        assert report["http_status"] == 200 and report["status"] == "degraded", report
        assert report["store"]["pending"] >= 2 and "sqlite store" in report["store"]["problem"], report
        assert any(problem.startswith("store: ") for problem in report["problems"]), report
        await call(first, "still serving", proxy)
        await call(second, "still serving", proxy)
        assert proxy.log().count(FAILED) == 1, proxy.log()[-3000:]

        chattr("-i", *files)
        await until(lambda: second.session_id in stored(path), "the sessions to be written once the store is back")

        async def caught_up() -> bool:
            records = stored(path)
            # Each call is a request and its reply: 7 calls on the first session, 2 on the second, at least.
            return records[first.session_id]["messages"] >= 14 and records[second.session_id]["messages"] >= 4

        await until(caught_up, "every change made while read-only to be written")
        report = await store_report(proxy)
        assert report["http_status"] == 200 and report["status"] == "ready" and report["store"]["status"] == "ok"
        assert proxy.log().count(FAILED) == 1 and proxy.log().count(RECOVERED) == 1, proxy.log()[-3000:]
        await call(second, "after", proxy)
    assert proxy.proc is not None and proxy.proc.returncode is None


async def test_redis_killed_under_live_sessions(start_proxy) -> None:  # type: ignore[no-untyped-def]
    try:
        server = RedisServer().start()
    except RedisUnavailable as exc:
        missing(exc)
    try:
        upstream = shlex.join(sdk_server_command())
        proxy: ProxyProcess = await start_proxy("--upstream", upstream, "--store", server.url)
        async with aiohttp.ClientSession() as http:
            first = await begin(http, proxy)
            await call(first, "before", proxy)
            server.kill()
            second = await begin(http, proxy)
            for index in range(3):
                await call(first, f"down {index}", proxy)
                await call(second, f"down {index}", proxy)

            async def failing_for_a_while() -> bool:
                store = (await readyz(proxy)).get("store", {})
                return store.get("status") == "failing" and store.get("failed_attempts", 0) >= 3

            await until(failing_for_a_while, "/readyz to report the store failing after several attempts")
            report = await store_report(proxy)
            assert report["http_status"] == 200 and report["status"] == "degraded", report
            assert "redis store" in report["store"]["problem"], report
            assert proxy.log().count(FAILED) == 1, proxy.log()[-3000:]

            server.start()
            store = open_store(server.url)
            try:

                async def written() -> bool:
                    records = [await store.get(client.session_id) for client in (first, second)]
                    return all(record is not None and record.messages >= 8 for record in records)

                await until(written, "every change made while Redis was down to be written")
            finally:
                await store.close()
            await until(lambda: RECOVERED in proxy.log(), "the log to say the store is back", limit=10)
            assert (await readyz(proxy))["store"]["status"] == "ok"
            assert proxy.log().count(FAILED) == 1
    finally:
        server.stop()


async def test_a_store_down_at_start_is_reported_and_written_once_it_is_there(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "later" / "sessions.db"
    proxy: ProxyProcess = await start_proxy(
        "--upstream", shlex.join(sdk_server_command()), "--store", f"sqlite://{path}"
    )
    report = await store_report(proxy)
    assert report["http_status"] == 200 and report["status"] == "degraded", report
    assert "later does not exist" in report["store"]["problem"], report
    async with aiohttp.ClientSession() as http:
        client = await begin(http, proxy)
        await call(client, "before the store", proxy)
        path.parent.mkdir()
        await until(lambda: path.exists() and client.session_id in stored(path), "the session to be written")
    await until(lambda: RECOVERED in proxy.log(), "the log to say the store is back", limit=10)
    assert (await store_report(proxy))["status"] == "ready"
    assert proxy.log().count(FAILED) == 1, proxy.log()[-3000:]


async def test_a_full_queue_while_the_store_is_down_is_bounded_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shadowproxy.sessions.persistence")
    path = tmp_path / "s.db"
    store = SqliteStore(str(path), busy_timeout=0.01)
    await store.open()
    worker = PersistenceWorker(store, flush_interval=0.01, batch_size=10, max_pending=10, retry_max=0.05)
    await worker.start()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for wave in range(10):
            for n in range(5):
                worker.record(SessionRecord(id=f"w{wave}-{n}"))
            await asyncio.sleep(0.03)  # several failed attempts, each with changes dropped since the last
        assert worker.stats.failures >= 5 and worker.stats.dropped == 40 and worker.stats.queue_depth == 10
        assert worker.store_status.failing and "database is locked" in (worker.store_status.problem or "")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    deadline = asyncio.get_running_loop().time() + 10
    while worker.stats.queue_depth or "room again" not in caplog.text:
        assert asyncio.get_running_loop().time() < deadline, caplog.text
        await asyncio.sleep(0.01)
    await worker.stop()
    page, _ = await store.list(limit=100)
    assert sorted(record.id for record in page) == [f"w{wave}-{n}" for wave in (0, 1) for n in range(5)]
    assert not worker.store_status.failing and worker.store_status.failed_attempts == 0
    lines = [record.getMessage() for record in caplog.records]
    assert sum("queue full" in line for line in lines) == 1, lines
    assert sum("40 changes to new sessions were dropped" in line for line in lines) == 1, lines
    assert sum(FAILED in line for line in lines) == 1 and sum(RECOVERED in line for line in lines) == 1, lines
    await store.close()
