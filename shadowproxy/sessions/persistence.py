"""The persistence worker: session changes go to the store in the background, in batches.

The hot path calls :meth:`PersistenceWorker.record` (synchronous, O(1), never
raises): it keeps the record in a dict keyed by session id, so a session
that changes many times between flushes is written once, in its latest state.
One task copies the pending records and writes them with ``put_many`` every
``flush_interval`` or as soon as
``batch_size`` sessions are waiting. A failing store keeps everything pending
and is retried with exponential backoff; the proxy never waits for it and serves
on from memory. A failure is logged once when it begins and once when the store
is back (not per attempt), and :attr:`PersistenceWorker.store_status` tells
``/readyz`` what is wrong meanwhile. Only a *new* session arriving while
``max_pending`` sessions are already waiting is dropped; that is counted, and
logged once when dropping begins and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from shadowproxy.core.record import SessionRecord
from shadowproxy.core.tasks import spawn
from shadowproxy.stores.base import SessionStore, StoreError, copy_record

log = logging.getLogger(__name__)

QUEUE_DEPTH = Gauge("shadowproxy_persistence_queue_depth", "Sessions with changes not yet written to the store.")
LAG = Gauge("shadowproxy_persistence_lag_seconds", "Age of the oldest session change not yet written.")
CHANGES = Counter("shadowproxy_persistence_changes", "Session changes handed to the persistence worker.")
WRITTEN = Counter("shadowproxy_persistence_records_written", "Session records written to the store.")
BATCH_SIZE = Histogram(
    "shadowproxy_persistence_batch_size",
    "Records per put_many call.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 5000),
)
FLUSH_SECONDS = Histogram("shadowproxy_persistence_flush_seconds", "Duration of one successful put_many call.")
RETRIES = Counter("shadowproxy_persistence_retries", "Write attempts made after a failed one.")
FAILURES = Counter("shadowproxy_persistence_failures", "put_many calls that failed (pending changes are kept).")
DROPPED = Counter("shadowproxy_persistence_dropped", "Session changes dropped because the queue was full.")
FAILING = Gauge("shadowproxy_persistence_store_failing", "1 while the session store fails (changes kept in memory).")


@dataclass(frozen=True, slots=True)
class PersistenceStats:
    """A point-in-time view of the worker, for tests, the admin API and logs."""

    queue_depth: int
    recorded: int
    written: int
    batches: int
    last_batch_size: int
    last_flush_seconds: float
    retries: int
    failures: int
    dropped: int
    lag_seconds: float


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """Whether the store takes writes; while it fails, what the last attempt said and since when."""

    problem: str | None
    since: float | None
    failed_attempts: int

    @property
    def failing(self) -> bool:
        return self.problem is not None


class PersistenceWorker:
    """Absorbs session changes from the hot path and writes them to ``store`` in coalesced batches."""

    def __init__(
        self,
        store: SessionStore,
        *,
        flush_interval: float = 0.1,
        batch_size: int = 500,
        max_pending: int = 100_000,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
        stop_timeout: float = 5.0,
        expire_interval: float | None = 60.0,
    ) -> None:
        if flush_interval <= 0 or batch_size < 1 or max_pending < batch_size:
            raise ValueError("need flush_interval > 0, batch_size >= 1 and max_pending >= batch_size")
        self.store = store
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.stop_timeout = stop_timeout
        self.expire_interval = expire_interval
        self._pending: dict[str, SessionRecord] = {}
        self._inflight = 0
        self._oldest: float | None = None
        self._inflight_oldest: float | None = None
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._problem: str | None = None
        self._failing_since: float | None = None
        self._failures_before = 0
        self._dropped_before: int | None = None
        self._recorded = self._dropped = self._written = self._batches = self._last_batch = 0
        self._retries = self._failures = 0
        self._last_flush = 0.0
        self._reported = (0, 0)

    def record(self, session: SessionRecord) -> None:
        """Queue ``session``; its state is copied when the batch is written. Never blocks, never raises."""
        try:
            pending = self._pending
            if session.id not in pending and len(pending) + self._inflight >= self.max_pending:
                self._dropped += 1
                return
            if self._oldest is None:
                self._oldest = time.monotonic()
            # The live record, not a copy: it is copied once per flush, so a session that changes on
            # every message costs one dict store per change here.
            pending[session.id] = session
            self._recorded += 1
            if len(pending) >= self.batch_size:
                self._wake.set()
        except Exception:
            self._dropped += 1
            log.exception("could not queue session %r for persistence", getattr(session, "id", None))

    @property
    def stats(self) -> PersistenceStats:
        oldest = min((t for t in (self._oldest, self._inflight_oldest) if t is not None), default=None)
        return PersistenceStats(
            queue_depth=len(self._pending) + self._inflight,
            recorded=self._recorded,
            written=self._written,
            batches=self._batches,
            last_batch_size=self._last_batch,
            last_flush_seconds=self._last_flush,
            retries=self._retries,
            failures=self._failures,
            dropped=self._dropped,
            lag_seconds=0.0 if oldest is None else time.monotonic() - oldest,
        )

    @property
    def store_status(self) -> StoreStatus:
        failed = self._failures - self._failures_before if self._problem is not None else 0
        return StoreStatus(self._problem, self._failing_since, failed)

    async def start(self) -> None:
        """Open the store and start the one background task that flushes. Calling it twice is an error.

        A store that cannot be opened does not stop the start: serving matters more than the store being there.
        It is reported as failing, like one that fails later, and tried again with backoff until it opens.
        """
        if self._task is not None:
            raise RuntimeError("the persistence worker is already started")
        try:
            await self.store.open()
        except StoreError as exc:
            self._failures += 1
            FAILURES.inc()
            self._report_failure(exc)
        self._task = spawn(self._run(), name="shadowproxy-persistence")

    async def flush(self) -> None:
        """Write everything pending now; raises the store's error (and keeps the changes) if it fails."""
        async with self._flush_lock:
            while self._pending:
                await self._write_pending()

    async def _write_pending(self) -> None:
        batch, self._pending = self._pending, {}
        self._inflight, self._inflight_oldest, self._oldest = len(batch), self._oldest, None
        live = list(batch.values())
        records = [copy_record(record) for record in live]
        done = 0
        try:
            for start in range(0, len(records), self.batch_size):
                chunk = records[start : start + self.batch_size]
                began = time.perf_counter()
                try:
                    await self.store.put_many(chunk)
                except Exception:
                    self._failures += 1
                    FAILURES.inc()
                    raise
                self._last_flush = time.perf_counter() - began
                FLUSH_SECONDS.observe(self._last_flush)
                BATCH_SIZE.observe(len(chunk))
                done += len(chunk)
                self._inflight -= len(chunk)
                self._written += len(chunk)
                self._batches += 1
                self._last_batch = len(chunk)
                WRITTEN.inc(len(chunk))
        finally:
            if done < len(records):
                self._requeue(live[done:])
            self._inflight, self._inflight_oldest = 0, None

    def _requeue(self, records: list[SessionRecord]) -> None:
        """Put unwritten records back, unless the session was queued again meanwhile."""
        newer, self._pending = self._pending, {}
        for record in records:
            self._pending[record.id] = record
        self._pending.update(newer)
        if self._inflight_oldest is not None:
            self._oldest = min(self._inflight_oldest, self._oldest or self._inflight_oldest)

    async def _run(self) -> None:
        delay = self.retry_initial if self._problem is not None else 0.0
        next_expire = time.monotonic() + (self.expire_interval or 0.0)
        while not self._stopping:
            await self._pause(delay or self.flush_interval, early_on_batch=not delay)
            if self._stopping:
                return
            if delay:
                self._retries += 1
                RETRIES.inc()
            try:
                async with self._flush_lock:
                    if self._pending:
                        await self._write_pending()
                    elif self._problem is not None:
                        # Nothing to write, but the store is known to be down: find out when it is back.
                        await self._probe()
            except Exception as exc:
                delay = min(self.retry_max, delay * 2 if delay else self.retry_initial)
                self._report_failure(exc)
            else:
                delay = 0.0
                self._report_recovery()
                if self.expire_interval and time.monotonic() >= next_expire:
                    next_expire = time.monotonic() + self.expire_interval
                    await self._expire()
            self._publish()

    async def _pause(self, seconds: float, *, early_on_batch: bool) -> None:
        """Wait ``seconds``, or less if stopping, or (when ``early_on_batch``) once a full batch is waiting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping:
            self._wake.clear()
            remaining = deadline - loop.time()
            if remaining <= 0 or (early_on_batch and len(self._pending) >= self.batch_size):
                return
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _expire(self) -> None:
        try:
            expired = await self.store.expire()
        except Exception as exc:
            log.warning("expiring idle sessions failed: %s", exc)
        else:
            if expired:
                log.info("expired %d idle sessions", expired)

    async def _probe(self) -> None:
        try:
            await self.store.open()
        except Exception:
            self._failures += 1
            FAILURES.inc()
            raise

    def _report_failure(self, exc: Exception) -> None:
        if self._problem is None:
            self._failures_before = self._failures - 1
            self._failing_since = time.time()
            pending = len(self._pending)
            log.error("session store failing, serving from memory with %d sessions pending; retrying: %s", pending, exc)
            FAILING.set(1)
        self._problem = str(exc) or exc.__class__.__name__

    def _report_recovery(self) -> None:
        if self._problem is not None:
            failed = self._failures - self._failures_before
            log.warning("session store recovered after %d failed attempts", failed)
            FAILING.set(0)
        self._problem = self._failing_since = None

    def _publish(self) -> None:
        """Move the hot path's plain counters into Prometheus (the hot path itself touches no metric)."""
        stats = self.stats
        QUEUE_DEPTH.set(stats.queue_depth)
        LAG.set(stats.lag_seconds)
        recorded, dropped = self._reported
        CHANGES.inc(stats.recorded - recorded)
        if stats.dropped > dropped:
            DROPPED.inc(stats.dropped - dropped)
            if self._dropped_before is None:
                self._dropped_before = dropped
                log.error("persistence queue full (%d sessions): dropping changes to new sessions", self.max_pending)
        elif self._dropped_before is not None and stats.queue_depth <= self.max_pending // 2:
            # Half empty, not merely below the bound: a queue hovering at it would log at every flush.
            lost = stats.dropped - self._dropped_before
            log.warning("persistence queue has room again; %d changes to new sessions were dropped", lost)
            self._dropped_before = None
        self._reported = (stats.recorded, stats.dropped)

    async def stop(self) -> None:
        """Stop the task, then flush what is pending, retrying with backoff for up to ``stop_timeout``."""
        self._stopping = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_timeout
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=self.stop_timeout)
            except TimeoutError:
                log.warning("the persistence task did not stop in %.1fs; cancelled it", self.stop_timeout)
            except Exception:
                pass  # it died earlier; spawn() logged why, and the flush below still runs
        delay = self.retry_initial
        while self._pending:
            remaining = deadline - loop.time()
            try:
                await asyncio.wait_for(self.flush(), timeout=max(remaining, 0.001))
            except Exception as exc:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    lost = len(self._pending)
                    self._dropped += lost
                    self._reported = (self._reported[0], self._reported[1] + lost)
                    DROPPED.inc(lost)
                    log.error("shutting down with the session store failing: %d session changes lost (%s)", lost, exc)
                    break
                self._retries += 1
                RETRIES.inc()
                await asyncio.sleep(min(delay, remaining))
                delay = min(self.retry_max, delay * 2)
        self._publish()
