"""The proxy's own SSE event ids, for upstreams that give none (stdio, WebSocket, legacy SSE).

Every event the proxy streams to a Streamable HTTP client on such an upstream's
behalf is appended to the store's event log first, and carries the id the log
gave it; a client that lost the stream sends that id back as ``Last-Event-ID``
and gets every later event of the stream, from this process or, after a
restart, from SQLite or Redis. A POST stream still being answered is followed
live as well: its :class:`StreamLog` hands each new event to the readers that
resumed it.

The event path waits for the log: an id a client has seen is an id the log
holds, so nothing acknowledged can be lost. Replies sent as plain JSON never
touch the log.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

from shadowproxy.core import counters
from shadowproxy.core.inbox import Inbox
from shadowproxy.stores.base import SessionStore, StoredEvent, StoreError, split_event_id

log = logging.getLogger(__name__)

GET_STREAM = "get"
"""The stream id of a session's standalone GET stream (one per session, so one id)."""
FOLLOW_BACKLOG = 10_000


def stream_of(event_id: str) -> str | None:
    """The stream an event id belongs to, or ``None`` when it is not one of the log's ids."""
    parsed = split_event_id(event_id)
    return parsed[0] if parsed is not None else None


class StreamLog:
    """One SSE stream's events in a session's event log, and the readers following it live."""

    __slots__ = ("_stream_id", "followers", "last_id", "session_id", "store")

    def __init__(self, store: SessionStore, session_id: str, stream_id: str | None = None) -> None:
        self.store = store
        self.session_id = session_id
        self._stream_id = stream_id
        self.followers: list[Inbox[StoredEvent | None]] = []
        self.last_id: str | None = None

    @property
    def stream_id(self) -> str:
        # Made on first use: most answers are plain JSON and never become a stream, and a random id costs a
        # system call.
        if self._stream_id is None:
            self._stream_id = secrets.token_urlsafe(6)
        return self._stream_id

    async def append(self, data: bytes) -> str | None:
        """Log ``data`` and return its event id; ``None`` when the store failed (the event goes without one)."""
        try:
            event_id = await self.store.append_event(self.session_id, self.stream_id, data)
        except StoreError as exc:
            log.warning("event log unavailable for session %s: %s", self.session_id[:8], exc)
            counters.event_log_failed()
            return None
        counters.event_logged()
        self.announce(StoredEvent(event_id, self.stream_id, data))
        return event_id

    async def append_once(self, data: bytes) -> None:
        """Log ``data`` unless an append that was interrupted (the client left mid-write) got it in after all."""
        if self.last_id is not None:
            for event in await replay(self.store, self.session_id, self.last_id):
                if event.data == data:
                    self.announce(event)
                    return
        await self.append(data)

    def announce(self, event: StoredEvent) -> None:
        self.last_id = event.event_id
        for follower in self.followers:
            follower.put(event)

    def follow(self) -> Inbox[StoredEvent | None]:
        """A reader of the events logged from now on; ``None`` arrives when the stream ends."""
        follower: Inbox[StoredEvent | None] = Inbox(FOLLOW_BACKLOG)
        self.followers.append(follower)
        return follower

    def unfollow(self, follower: Inbox[StoredEvent | None]) -> None:
        if follower in self.followers:
            self.followers.remove(follower)

    def end(self) -> None:
        """The stream's request is answered (or failed): its followers are done once they have read the rest."""
        for follower in self.followers:
            follower.put(None)
        self.followers.clear()


async def replay(store: SessionStore, session_id: str, last_event_id: str) -> list[StoredEvent]:
    """The logged events after ``last_event_id``; a store failure reads as nothing to replay."""
    try:
        return await store.events_after(session_id, last_event_id)
    except StoreError as exc:
        log.warning("event log unavailable for session %s: %s", session_id[:8], exc)
        counters.event_log_failed()
        return []


def unseen(events: list[StoredEvent], seen: set[str]) -> Iterator[StoredEvent]:
    """The events not yet sent, skipping priming events (no data: nothing for the client)."""
    for event in events:
        if event.event_id not in seen and event.data:
            seen.add(event.event_id)
            yield event
