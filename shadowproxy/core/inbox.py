"""An inbox: filled by callbacks, drained by one waiting task.

Cheaper than an ``asyncio.Queue``: a deque and at most one future, created only
when the reader has to wait. A bounded inbox drops its oldest item when full
and counts what it dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

from shadowproxy.core.errors import JsonRpcError

T = TypeVar("T")


class Inbox(Generic[T]):
    __slots__ = ("_error", "_items", "_waiter", "dropped")

    def __init__(self, bound: int | None = None) -> None:
        self._items: deque[T] = deque(maxlen=bound)
        self._waiter: asyncio.Future[None] | None = None
        self._error: JsonRpcError | None = None
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        if self._items.maxlen is not None and len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._wake()

    def put_back(self, item: T) -> None:
        """Return an item a reader took but could not deliver: it is the next one read."""
        self._items.appendleft(item)
        self._wake()

    def fail(self, error: JsonRpcError) -> None:
        """Wake the reader with ``error`` once the items are drained."""
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> T:
        while not self._items:
            if self._error is not None:
                raise self._error
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                # A reader that takes over (a GET stream resumed while its old task is still being cancelled)
                # may be waiting by now: its waiter stays.
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.popleft()
