"""A token bucket: ``burst`` at once, then ``rate`` a second on average.

The one rationing the proxy does in-process: the ``rate`` rule action (a bucket per key), a child's stderr lines,
and the log lines about bad requests. The caller passes the time, so a test can drive the clock.
"""

from __future__ import annotations

import math


class TokenBucket:
    """``burst`` tokens to begin with, ``rate`` more each second, never more than ``burst``."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now

    def fill(self, now: float) -> float:
        """The tokens there are at ``now``."""
        tokens = self.tokens + (now - self.last) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.tokens = tokens
        self.last = now
        return tokens

    def take(self, now: float) -> float:
        """Take one token: 0.0 when there was one, else the seconds until there is (and nothing is taken)."""
        tokens = self.fill(now)
        if tokens < 1.0:
            return (1.0 - tokens) / self.rate if self.rate else math.inf
        self.tokens = tokens - 1.0
        return 0.0

    def take_up_to(self, count: int, now: float) -> int:
        """Take as many of ``count`` tokens as there are whole ones; how many were taken."""
        taken = min(count, int(self.fill(now)))
        self.tokens -= taken
        return taken

    def full(self, now: float) -> bool:
        """Whether the bucket has filled up again by ``now`` (it then holds nothing worth keeping)."""
        return self.tokens + (now - self.last) * self.rate >= self.burst
