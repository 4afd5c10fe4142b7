"""A stream session's send buffer (:mod:`shadowproxy.fronts.stream_session`), bounded in bytes."""

from __future__ import annotations

from collections.abc import Callable

from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import Message

Outgoing = tuple[Message, bool]
"""A message for the client, and whether the chain has already judged it."""


class Outbox(Inbox[Outgoing]):
    """A stream's send buffer, bounded in bytes; ``on_overflow`` is called instead of growing past the bound."""

    __slots__ = ("bound", "on_overflow", "queued")

    def __init__(self, bound: int, on_overflow: Callable[[], None]) -> None:
        super().__init__()
        self.bound = bound
        self.queued = 0
        self.on_overflow = on_overflow

    def put(self, item: Outgoing) -> None:
        if self._error is not None:
            return
        size = len(item[0].to_bytes())
        if self._items and self.queued + size > self.bound:
            self.dropped += 1
            self.on_overflow()
            return
        self.queued += size
        super().put(item)

    async def next(self) -> Outgoing:
        item = await super().next()
        self.queued -= len(item[0].to_bytes())
        return item

    def shut(self, error: JsonRpcError) -> None:
        """Drop what is queued and wake the writer with ``error`` now."""
        self._items.clear()
        self.queued = 0
        self.fail(error)
