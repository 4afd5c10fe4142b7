"""Replicas of one upstream: several URLs of a Streamable HTTP server (``urls``), or several copies of a shared
stdio server (``replicas``).

A new session is given the next replica in turn that is not known to be down; it stays on that replica for its
life, so a replica that dies takes only its own sessions with it. A replica is known to be down from a failed
connection or a failed health check, until :data:`RETRY_AFTER` seconds have passed or a check finds it up.
"""

from __future__ import annotations

import time

RETRY_AFTER = 5.0
"""Seconds a replica found down is passed over by new sessions (a health check that finds it up ends it sooner)."""


class Spread:
    """Round robin over ``count`` replicas, passing over those known to be down (all down: plain round robin)."""

    __slots__ = ("_down_until", "_next", "_why")

    def __init__(self, count: int) -> None:
        self._next = 0
        self._down_until = [0.0] * count
        self._why = [""] * count

    def __len__(self) -> int:
        return len(self._down_until)

    def pick(self, avoid: int | None = None) -> int:
        """The replica for a new session; ``avoid``: one that just failed, when another may serve."""
        count = len(self._down_until)
        now = time.monotonic()
        for step in range(count):
            index = (self._next + step) % count
            if self._down_until[index] <= now and index != avoid:
                self._next = index + 1
                return index
        index = self._next % count
        self._next = index + 1
        return index

    def failed(self, index: int, why: str, seconds: float = RETRY_AFTER) -> None:
        self._down_until[index] = time.monotonic() + seconds
        self._why[index] = why

    def up(self, index: int) -> None:
        self._down_until[index] = 0.0

    def down(self) -> dict[int, str]:
        """The replicas known to be down now, and why."""
        now = time.monotonic()
        return {index: self._why[index] for index, until in enumerate(self._down_until) if until > now}
