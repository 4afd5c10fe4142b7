"""Counters for the ``rate`` action: N events per interval per key.

:class:`RateCounter` is the seam. It is called on the hot path and must answer
at once, so it is synchronous: an implementation shared between instances (a
Redis one) keeps local buckets and reconciles them in the background; it never
makes the message wait on the network. :class:`MemoryRateCounter` is the
in-process implementation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from shadowproxy.core.tokenbucket import TokenBucket


@runtime_checkable
class RateCounter(Protocol):
    """Counts hits per key. It does not know rules, sessions or messages: only keys, limits and intervals."""

    def hit(self, key: str, limit: int, interval: float) -> float:
        """Count one event for ``key``; return 0.0 if it is within ``limit`` per ``interval`` seconds,
        else the seconds until one more would be allowed (the event is then not counted)."""
        ...


class MemoryRateCounter:
    """A token bucket per key: ``limit`` tokens, refilled evenly over ``interval`` seconds.

    A bucket allows a burst of ``limit`` and then ``limit`` per ``interval`` on
    average. Buckets that have refilled completely carry no information and are
    swept once the table grows past ``max_keys``, so idle sessions cost nothing.
    """

    __slots__ = ("_buckets", "_clock", "max_keys")

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._clock = clock
        self.max_keys = max_keys

    def hit(self, key: str, limit: int, interval: float) -> float:
        now = self._clock()
        rate = limit / interval
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, limit, now)
        else:
            # A reload may have changed the rule's limit: the bucket follows it at once.
            bucket.rate, bucket.burst = rate, limit
        wait = bucket.take(now)
        if not wait and len(self._buckets) > self.max_keys:
            self._sweep(now)
        return wait

    def _sweep(self, now: float) -> None:
        for key in [key for key, bucket in self._buckets.items() if bucket.full(now)]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def create_counter(backend: str) -> RateCounter:
    """The counter a ``rate_backend`` option names; only ``memory`` exists so far."""
    if backend == "memory":
        return MemoryRateCounter()
    raise ValueError(f"unknown rate_backend {backend!r} (known: memory)")
