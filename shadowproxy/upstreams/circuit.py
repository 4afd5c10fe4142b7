"""A circuit breaker for starting upstream servers, so one that keeps failing is not hammered.

Closed: attempts go ahead, and failures are remembered for ``window`` seconds.
``failures`` of them within the window open it. Open: no attempt for
``open_for`` seconds; callers get :class:`UpstreamUnavailable` instead. Then
half-open: one attempt may go; its success closes the circuit, its failure
opens it again for another ``open_for``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum

from shadowproxy.config import CircuitConfig
from shadowproxy.core.errors import UpstreamError


class CircuitState(IntEnum):
    """The values of the ``shadowproxy_upstream_circuit_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class UpstreamUnavailable(UpstreamError):
    """A new session refused because the upstream's circuit is open: JSON-RPC -32000, HTTP 503."""

    http_status = 503

    def __init__(self, name: str, retry_after: float, failures: int) -> None:
        seconds = max(1, round(retry_after))
        super().__init__(
            f"upstream {name!r} is unavailable: it failed {failures} times in a row; retry in {seconds}s",
            data={"reason": "UPSTREAM_UNAVAILABLE", "upstream": name, "circuit": "open", "retry_after": seconds},
        )
        self.retry_after = seconds


class Circuit:
    """The breaker of one upstream. ``clock`` is injectable so that its tests need no sleeping."""

    def __init__(self, name: str, config: CircuitConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.failures: deque[float] = deque(maxlen=config.failures)
        self.opened_at: float | None = None
        self.opens = 0

    @property
    def state(self) -> CircuitState:
        if self.opened_at is None:
            return CircuitState.CLOSED
        if self.clock() - self.opened_at < self.config.open_for:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def retry_after(self) -> float:
        """Seconds until the circuit lets an attempt through (0 when it does now)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.config.open_for - self.clock())

    def check(self) -> None:
        """Raise :class:`UpstreamUnavailable` while open; a half-open circuit lets the attempt go."""
        if self.state is CircuitState.OPEN:
            raise UpstreamUnavailable(self.name, self.retry_after(), len(self.failures))

    def failed(self) -> None:
        now = self.clock()
        if self.opened_at is not None:
            # A half-open attempt failed (or a child of before the opening died): open for another period.
            if self.state is CircuitState.HALF_OPEN:
                self.opened_at = now
                self.opens += 1
            return
        self.failures.append(now)
        window_start = now - self.config.window
        if len(self.failures) == self.config.failures and self.failures[0] >= window_start:
            self.opened_at = now
            self.opens += 1

    def succeeded(self) -> None:
        self.failures.clear()
        self.opened_at = None
