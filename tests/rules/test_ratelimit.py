"""The in-memory rate counter: a token bucket per key, on an injected clock."""

from __future__ import annotations

import pytest

from shadowproxy.rules.ratelimit import MemoryRateCounter, RateCounter, create_counter


def test_limit_per_interval_then_refill() -> None:
    now = [0.0]
    counter = MemoryRateCounter(clock=lambda: now[0])
    assert isinstance(counter, RateCounter)
    assert [counter.hit("k", 3, 60.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert counter.hit("k", 3, 60.0) == pytest.approx(20.0)
    assert counter.hit("other", 3, 60.0) == 0.0
    now[0] = 19.0
    assert counter.hit("k", 3, 60.0) == pytest.approx(1.0)
    now[0] = 20.0
    assert counter.hit("k", 3, 60.0) == 0.0
    assert counter.hit("k", 3, 60.0) > 0.0


def test_idle_buckets_are_swept() -> None:
    now = [0.0]
    counter = MemoryRateCounter(clock=lambda: now[0], max_keys=10)
    for index in range(10):
        counter.hit(f"k{index}", 1, 1.0)
    now[0] = 5.0
    counter.hit("fresh", 1, 1.0)
    assert len(counter) == 1


def test_create_counter() -> None:
    assert isinstance(create_counter("memory"), MemoryRateCounter)
    with pytest.raises(ValueError, match="unknown rate_backend 'redis'"):
        create_counter("redis")
