"""One timer per relayed request, instead of a timeout scope for its deadline and another for each wait.

``asyncio.timeout`` builds a scope and, on uvloop, a libuv timer handle each time it is entered, and a relay
entered two per request: the request's deadline around everything, and the silent-answer limit around each
wait for the upstream (``stream_after``, ``poll_after``, keep-alives). A :class:`RequestTimer` arms one handle
for the sooner of the two. When it fires while the task waits for the answer, the task gets a ``CancelledError``
that :meth:`RequestTimer.expired` claims (as ``asyncio.timeout`` does); when it fires anywhere else before the
deadline, it only re-arms itself for the deadline.
"""

from __future__ import annotations

import asyncio


class RequestTimer:
    __slots__ = ("_armed_for", "_base", "_handle", "_loop", "_task", "deadline", "fired", "waiting")

    def __init__(self, deadline: float | None, idle: float) -> None:
        """Armed at once for the sooner of ``deadline`` (loop time; ``None`` for none) and ``idle`` from now."""
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._base = task.cancelling()
        self.deadline = deadline
        self.waiting = False
        self.fired = False
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: float | None = idle
        self._arm(self._loop.time() + idle)

    def _arm(self, when: float) -> None:
        if self.deadline is not None and self.deadline < when:
            when = self.deadline
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_for = None
        if self.waiting or self.past_deadline():
            self.fired = True
            self._task.cancel()
        elif self.deadline is not None:
            self._arm(self.deadline)

    def wait(self, idle: float) -> None:
        """The task now waits for the upstream: wake it after ``idle`` seconds of silence, or at the deadline."""
        self.waiting = True
        if self._armed_for == idle:
            # Armed for this wait when the request began: a fast answer costs no second timer.
            self._armed_for = None
            return
        self._armed_for = None
        if self._handle is not None:
            self._handle.cancel()
        self._arm(self._loop.time() + idle)

    def expired(self) -> bool:
        """Whether the ``CancelledError`` being handled is this timer's (and no one else's): claim it if so."""
        self.waiting = False
        if not self.fired:
            return False
        self.fired = False
        return self._task.uncancel() <= self._base

    def past_deadline(self) -> bool:
        return self.deadline is not None and self._loop.time() >= self.deadline

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
