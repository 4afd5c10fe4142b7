"""The SQLite store's own process: its death is a StoreError and it is replaced; its protocol survives a cancelled
caller; it outlives the signals that start the proxy's shutdown, so the last flush still has somewhere to go."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from shadowproxy.core.record import SessionRecord
from shadowproxy.stores import StoreError
from shadowproxy.stores.sqlite import SqliteStore


def sqlite_processes(path: Path) -> list[int]:
    """Pids of the store processes serving ``path`` (found by command line, as an operator would)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"shadowproxy.stores.sqlite_process" in argv and str(path).encode() in argv:
            found.append(int(entry.name))
    return found


async def eventually(operation, within: float = 10.0):  # type: ignore[no-untyped-def]
    """``operation()`` once the store's restart backoff lets it through."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await operation()
        except StoreError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.02)


async def test_a_dead_sqlite_process_is_a_store_error_and_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(str(path))
    await store.put_many([SessionRecord(id="kept", messages=3)])
    (pid,) = sqlite_processes(path)
    os.kill(pid, signal.SIGBUS)
    with pytest.raises(
        StoreError, match=rf"sqlite store {path}: the SQLite process ended with SIGBUS: a memory-mapped"
    ):
        await store.get("kept")
    kept = await eventually(lambda: store.get("kept"))
    assert kept is not None and kept.messages == 3
    (replacement,) = sqlite_processes(path)
    assert replacement != pid
    await store.close()
    assert sqlite_processes(path) == []


async def test_a_cancelled_call_leaves_the_next_one_its_own_answer(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(str(path))
    await store.open()
    batch = [SessionRecord(id=f"big{n}", client_info={"pad": "x" * 200}) for n in range(20_000)]
    writing = asyncio.ensure_future(store.put_many(batch))  # noqa: TID251
    for _ in range(5):  # into the exchange: the request is on its way, the 6 MB batch far from written
        await asyncio.sleep(0)
    assert not writing.done(), "the batch was written before it could be cancelled: make it bigger"
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    await store.put_many([SessionRecord(id="after", messages=7)])
    after = await store.get("after")
    assert after is not None and after.messages == 7
    page, _ = await store.list(limit=1)
    assert len(page) == 1
    await store.close()


async def test_the_sqlite_process_outlives_sigint_and_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(str(path))
    await store.open()
    (pid,) = sqlite_processes(path)
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    await store.put_many([SessionRecord(id="last flush")])
    assert await store.get("last flush") is not None
    assert sqlite_processes(path) == [pid]
    await store.close()
