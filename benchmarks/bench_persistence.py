"""How many session updates the persistence worker absorbs, and what the hot path pays per update.

    python benchmarks/bench_persistence.py            # prints the figures (starts a private redis-server)
    pytest benchmarks/bench_persistence.py            # the same, as pytest-benchmark runs

The hot path's cost is :meth:`PersistenceWorker.record`, timed on its own, in
slices, while the worker writes to SQLite or Redis in the background; it
should stay flat whatever the store and however deep the queue. Throughput is
updates recorded divided by the time until the store holds all of them.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.redis_server when run as a script

from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.sessions.persistence import PersistenceWorker
from shadowproxy.stores import SessionStore, open_store
from tests.redis_server import RedisServer, RedisUnavailable

SLICE = 200  # updates per timed slice; the loop yields to the worker between slices, as connection tasks do


@dataclass(frozen=True, slots=True)
class Result:
    store: str
    sessions: int
    updates: int
    seconds: float
    record_ns_median: float
    record_ns_p99: float
    max_queue_depth: int
    rows_written: int

    @property
    def updates_per_second(self) -> float:
        return self.updates / self.seconds

    def line(self) -> str:
        return (
            f"{self.store:<7} sessions={self.sessions:>6} updates={self.updates:>7} "
            f"absorbed={self.updates_per_second:>10,.0f}/s  rows={self.rows_written:>7} "
            f"({self.rows_written / self.seconds:>8,.0f} rows/s)  record() median={self.record_ns_median:>5.0f}ns "
            f"p99={self.record_ns_p99:>6.0f}ns  max depth={self.max_queue_depth}"
        )


async def absorb(store: SessionStore, label: str, *, sessions: int, updates: int) -> Result:
    """Record ``updates`` changes spread over ``sessions`` sessions; time until all are in the store."""
    worker = PersistenceWorker(store, max_pending=max(100_000, sessions))
    records = [SessionRecord(id=f"bench-{n}", state=SessionState.ACTIVE, principal="bench") for n in range(sessions)]
    await worker.start()
    per_slice: list[float] = []
    depth = 0
    began = time.perf_counter()
    for start in range(0, updates, SLICE):
        for i in range(start, min(start + SLICE, updates)):
            record = records[i % sessions]
            record.messages += 1
            record.last_seen = time.time()
        # Time only the enqueue calls, over records already updated above.
        batch = [records[i % sessions] for i in range(start, min(start + SLICE, updates))]
        t0 = time.perf_counter_ns()
        for record in batch:
            worker.record(record)
        per_slice.append((time.perf_counter_ns() - t0) / len(batch))
        depth = max(depth, worker.stats.queue_depth)
        await asyncio.sleep(0)
    await worker.flush()  # whatever the worker has not written yet
    seconds = time.perf_counter() - began
    await worker.stop()
    last = await store.get(records[-1].id)
    assert last is not None and last.messages == records[-1].messages, "the store lags behind the worker"
    per_slice.sort()
    return Result(
        label,
        sessions,
        updates,
        seconds,
        statistics.median(per_slice),
        per_slice[int(len(per_slice) * 0.99)],
        depth,
        worker.stats.written,
    )


@contextmanager
def private_redis() -> Iterator[RedisServer | None]:
    server = RedisServer()
    try:
        server.start()
    except RedisUnavailable:
        yield None
        return
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def opened(kind: str, workdir: Path, redis: RedisServer | None) -> AsyncIterator[SessionStore]:
    if kind == "memory":
        url = "memory://"
    elif kind == "sqlite":
        url = f"sqlite://{workdir / f'bench-{uuid.uuid4().hex}.db'}"
    else:
        assert redis is not None
        url = f"{redis.url}?prefix=bench-{uuid.uuid4().hex}:"
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


SCENARIOS = (
    # (sessions, updates): many updates to few sessions (coalescing), and every update a new row (worst case).
    (1_000, 200_000),
    (50_000, 50_000),
)


async def run_all(kinds: tuple[str, ...], redis: RedisServer | None) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for kind in kinds:
            for sessions, updates in SCENARIOS:
                async with opened(kind, Path(workdir), redis) as store:
                    results.append(await absorb(store, kind, sessions=sessions, updates=updates))
    return results


def record_cost_by_depth() -> list[str]:
    """record() alone, no worker running, against queues of growing depth: it should not grow."""
    lines = []
    for depth in (10, 10_000, 100_000):
        worker = PersistenceWorker(open_store("memory://"), max_pending=depth + 1, batch_size=depth + 1)
        for n in range(depth):
            worker.record(SessionRecord(id=f"d{n}"))
        record = SessionRecord(id="d0")
        t0 = time.perf_counter_ns()
        for _ in range(100_000):
            worker.record(record)
        lines.append(f"record() with {depth:>6} pending: {(time.perf_counter_ns() - t0) / 100_000:.0f} ns")
    return lines


def main() -> None:
    print("\n".join(record_cost_by_depth()))
    with private_redis() as redis:
        kinds = ("memory", "sqlite", "redis") if redis else ("memory", "sqlite")
        for result in asyncio.run(run_all(kinds, redis)):
            print(result.line())


@pytest.fixture(scope="module")
def redis_for_bench() -> Iterator[RedisServer]:
    with private_redis() as redis:
        if redis is None:
            pytest.skip("no redis-server")
        yield redis


def test_record_cost(benchmark) -> None:  # type: ignore[no-untyped-def]
    worker = PersistenceWorker(open_store("memory://"))
    record = SessionRecord(id="hot", tags=["a", "b"])
    benchmark(worker.record, record)
    assert worker.stats.dropped == 0


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
@pytest.mark.parametrize(("sessions", "updates"), SCENARIOS)
def test_absorb(benchmark, request, tmp_path: Path, kind: str, sessions: int, updates: int) -> None:  # type: ignore[no-untyped-def]
    redis = request.getfixturevalue("redis_for_bench") if kind == "redis" else None

    async def once() -> Result:
        async with opened(kind, tmp_path, redis) as store:
            return await absorb(store, kind, sessions=sessions, updates=updates)

    result = benchmark.pedantic(lambda: asyncio.run(once()), rounds=1, iterations=1)
    benchmark.extra_info.update(
        updates_per_second=round(result.updates_per_second),
        rows_per_second=round(result.rows_written / result.seconds),
        record_ns_median=round(result.record_ns_median),
        record_ns_p99=round(result.record_ns_p99),
    )
    print(result.line())


if __name__ == "__main__":
    main()
