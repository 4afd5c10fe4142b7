"""Live sessions: the record, the channel to the upstream, and what arrived for no request.

The :class:`SessionManager` keeps live sessions in memory and reports every
change to the persistence worker, which writes them to the store in the
background. Nothing here awaits the store on the path of a message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol

from shadowproxy.errors import SESSION_NOT_FOUND, JsonRpcError
from shadowproxy.inbox import Inbox
from shadowproxy.jsonrpc import Message
from shadowproxy.session import SessionRecord, SessionState
from shadowproxy.tasks import spawn
from shadowproxy.upstreams.base import Channel

if TYPE_CHECKING:
    from shadowproxy.mount import Mount

log = logging.getLogger(__name__)

BACKLOG = 256


class ChangeSink(Protocol):
    """Where session changes go: the persistence worker."""

    def record(self, session: SessionRecord) -> None: ...


class LiveSession:
    """One session in this process: its record, its channel, and server messages no request claimed."""

    __slots__ = ("channel", "inbox", "listening", "mount", "record")

    def __init__(self, record: SessionRecord, mount: Mount) -> None:
        self.record = record
        self.mount = mount
        self.channel: Channel | None = None
        self.inbox: Inbox[Message] = Inbox(BACKLOG)
        self.listening = False

    def on_unsolicited(self, message: Message) -> None:
        """Keep a server message no request claimed (a list-changed notification, say) for the session's stream."""
        self.inbox.put(message)

    @property
    def id(self) -> str:
        return self.record.id


class SessionManager:
    """The live sessions of one process."""

    def __init__(self, changes: ChangeSink, *, ttl: float) -> None:
        self.changes = changes
        self.ttl = ttl
        self.live: dict[str, LiveSession] = {}

    def __len__(self) -> int:
        return len(self.live)

    def add(self, session: LiveSession) -> None:
        self.live[session.id] = session
        self.changes.record(session.record)

    def get(self, session_id: str) -> LiveSession | None:
        session = self.live.get(session_id)
        if session is not None and session.record.last_seen + self.ttl < time.time():
            self._forget(session, SessionState.EXPIRED)
            return None
        return session

    def touch(self, session: LiveSession, *, error: bool = False) -> None:
        """A message passed: update the counters and hand the change to the worker (no await)."""
        record = session.record
        record.last_seen = time.time()
        record.messages += 1
        if error:
            record.errors += 1
        self.changes.record(record)

    def activate(self, session: LiveSession, protocol_version: str | None) -> None:
        session.record.state = SessionState.ACTIVE
        if protocol_version:
            session.record.protocol_version = protocol_version
        self.changes.record(session.record)

    async def close(self, session_id: str, state: SessionState = SessionState.CLOSED) -> bool:
        session = self.live.get(session_id)
        if session is None:
            return False
        await self._close(session, state)
        return True

    async def _close(self, session: LiveSession, state: SessionState) -> None:
        self.live.pop(session.id, None)
        session.inbox.fail(JsonRpcError(SESSION_NOT_FOUND, f"session {state.value}"))
        session.record.state = state
        self.changes.record(session.record)
        if session.channel is not None:
            try:
                await session.channel.close()
            except Exception:
                log.exception("closing the upstream channel of session %s failed", session.id)

    def _forget(self, session: LiveSession, state: SessionState) -> None:
        self.live.pop(session.id, None)
        session.inbox.fail(JsonRpcError(SESSION_NOT_FOUND, f"session {state.value}"))
        session.record.state = state
        self.changes.record(session.record)
        if session.channel is not None:
            spawn(session.channel.close(), name=f"close-session-{session.id[:8]}")

    async def expire_idle(self) -> int:
        deadline = time.time() - self.ttl
        idle = [session for session in self.live.values() if session.record.last_seen < deadline]
        for session in idle:
            await self._close(session, SessionState.EXPIRED)
        return len(idle)

    async def sweep(self, interval: float) -> None:
        """Expire idle sessions forever; run as one background task."""
        while True:
            await asyncio.sleep(interval)
            expired = await self.expire_idle()
            if expired:
                log.info("expired %d idle session(s)", expired)

    async def close_all(self) -> None:
        await asyncio.gather(*(self._close(session, SessionState.CLOSED) for session in list(self.live.values())))
