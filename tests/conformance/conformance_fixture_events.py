"""An in-memory SSE event log for the conformance fixture, so its streams can be resumed (SEP-1699).

With an event store the SDK primes every POST SSE stream with an event id and a `retry` field, and a
client that lost a stream gets the rest with `GET` + `Last-Event-ID`: the `server-sse-polling` scenario
(tool `test_reconnection`) checks exactly that, and through the proxy it checks the proxy's own replay.
"""

from __future__ import annotations

from itertools import count

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage


class MemoryEventStore(EventStore):
    """Every event of every stream, in order, for the life of the process (a test fixture's lifetime)."""

    def __init__(self) -> None:
        self._events: list[tuple[EventId, StreamId, JSONRPCMessage | None]] = []
        self._ids = count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Append one event (None is a priming event) and return its id."""
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """Send the stream's events after `last_event_id`; None when that id is unknown."""
        position = next((i for i, (event_id, _, _) in enumerate(self._events) if event_id == last_event_id), None)
        if position is None:
            return None
        stream_id = self._events[position][1]
        for event_id, stream, message in self._events[position + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id
