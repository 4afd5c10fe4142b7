"""The ``rate`` action counted across instances: a sliding-window counter shared through Redis.

:meth:`SharedRateCounter.hit` answers at once from what this instance knows
(the cluster's count of the current and the previous window, plus its own hits
not yet sent); one background task adds the new hits to Redis, and a script
publishes each key's new total to every instance in the same round trip, so the
others know it before the client's next request can reach them. The estimate
of a sliding window is ``previous * (1 - elapsed share of the window) + current``.

What it does not do: wait for Redis. While Redis is away each instance counts
alone (the limit then holds per instance), and hits made at the same moment on
two instances can both pass before either hears of the other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from shadowproxy.cluster.wire import RATE_SCRIPT

if TYPE_CHECKING:
    from shadowproxy.cluster.bus import Bus

log = logging.getLogger(__name__)

MAX_KEYS = 100_000


@dataclass(slots=True)
class Window:
    """One key's counts: the cluster's total for ``window`` and the one before, and this instance's unsent hits."""

    interval: float
    window: int
    total: int = 0
    previous: int = 0
    pending: int = 0

    def roll(self, window: int) -> None:
        self.previous = self.total + self.pending if window == self.window + 1 else 0
        self.window, self.total, self.pending = window, 0, 0


class SharedRateCounter:
    """A :class:`~shadowproxy.rules.ratelimit.RateCounter` whose counts are the cluster's."""

    def __init__(self, member: Bus, clock: Callable[[], float] = time.time) -> None:
        self.member = member
        self._clock = clock
        self._windows: dict[str, Window] = {}
        self._unsent: dict[tuple[str, int, float], int] = {}
        self._wake = asyncio.Event()
        self._script = member.redis.register_script(RATE_SCRIPT)

    def hit(self, key: str, limit: int, interval: float) -> float:
        now = self._clock()
        window = int(now // interval)
        state = self._windows.get(key)
        if state is None:
            state = self._windows[key] = Window(interval, window)
            if len(self._windows) > MAX_KEYS:
                self._sweep(now)
        elif state.window != window:
            state.roll(window)
        elapsed = now / interval - window
        current = state.total + state.pending
        if state.previous * (1.0 - elapsed) + current + 1 > limit:
            return self._retry(state, limit, elapsed, current)
        state.pending += 1
        unsent = (key, window, interval)
        self._unsent[unsent] = self._unsent.get(unsent, 0) + 1
        self._wake.set()
        return 0.0

    @staticmethod
    def _retry(state: Window, limit: int, elapsed: float, current: int) -> float:
        """Seconds until the estimate leaves room for one more hit (at the next window if this one is full)."""
        if current + 1 > limit or state.previous == 0:
            return max((1.0 - elapsed) * state.interval, 0.001)
        share = 1.0 - (limit - 1 - current) / state.previous
        return max((share - elapsed) * state.interval, 0.001)

    def learn(self, key: str, window: int, interval: float, total: int) -> None:
        """A key's new total, published by whichever instance sent hits for it."""
        state = self._windows.get(key)
        if state is None:
            state = self._windows[key] = Window(interval, window)
        elif state.window < window:
            state.roll(window)
        if state.window == window:
            state.total = max(state.total, total)

    def _sweep(self, now: float) -> None:
        stale = [key for key, state in self._windows.items() if now // state.interval > state.window + 1]
        for key in stale:
            del self._windows[key]

    async def run(self) -> None:
        """Send hits to Redis as they come, batched: one task for the whole process."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            unsent, self._unsent = self._unsent, {}
            try:
                async with self.member.redis.pipeline(transaction=False) as pipe:
                    for (key, window, interval), count in unsent.items():
                        keys = [self.member.keys.rate(window, key)]
                        args = [count, int(interval * 2000), self.member.keys.broadcast, key, window, interval]
                        await self._script(keys=keys, args=args, client=pipe)
                    totals = await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("cluster: rate counts could not be shared (counting locally): %s", exc)
                continue
            for ((key, window, _), count), total in zip(unsent.items(), totals, strict=True):
                state = self._windows.get(key)
                if state is not None and state.window == window:
                    state.pending -= count
                    state.total = max(state.total, int(total))
