"""Live sessions: the record, the channel to the upstream, and what arrived for no request.

The :class:`SessionManager` keeps live sessions in memory and reports every
change to the persistence worker, which writes them to the store in the
background. Nothing here awaits the store on the path of a message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from shadowproxy.core.errors import SESSION_NOT_FOUND, JsonRpcError, ShadowProxyError
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.limit_hits import LimitExceeded
from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.core.tasks import spawn
from shadowproxy.sessions.admission import Counted, Guard
from shadowproxy.upstreams.base import Channel, UnsolicitedHandler, Upstream

if TYPE_CHECKING:
    from shadowproxy.sessions.eventlog import StreamLog
    from shadowproxy.stores import SessionStore

log = logging.getLogger(__name__)

BACKLOG = 256
RESTORE_TIMEOUT = 30.0
# Sessions ended here, remembered so that none is restored from a store that has not yet heard it ended.
MAX_ENDED = 10_000


LogicalKey = tuple[str, str | None, str | None, str | None]
"""A logical session's key: mount, principal, client name and client version, each bounded."""


class Mount(Protocol):
    """What sessions and the cluster know of the mount a session lives on (a :class:`shadowproxy.proxy.mount.Mount`):
    its name and path, and the upstream it opens channels to."""

    name: str
    path: str
    upstream: Upstream

    async def open_channel(self, on_unsolicited: UnsolicitedHandler) -> Channel:
        """A new session's channel to the upstream (through the era bridge when it needs one)."""
        ...


class ChangeSink(Protocol):
    """Where session changes go: the persistence worker."""

    def record(self, session: SessionRecord) -> None: ...


class LiveSession:
    """One session in this process: its record, its channel, and server messages no request claimed."""

    __slots__ = ("channel", "elsewhere", "inbox", "listening", "live_streams", "mount", "record")

    def __init__(self, record: SessionRecord, mount: Mount) -> None:
        self.record = record
        self.mount = mount
        self.channel: Channel | None = None
        self.inbox: Inbox[Message] = Inbox(BACKLOG)
        self.listening = False
        # POST streams still being answered, by stream id, so that a client that resumes one follows it live.
        self.live_streams: dict[str, StreamLog] = {}
        # In a cluster: where unsolicited messages go while the client's stream is held by another instance.
        self.elsewhere: Callable[[Message], None] | None = None

    def on_unsolicited(self, message: Message) -> None:
        """Keep a server message no request claimed (a list-changed notification, say) for the session's stream."""
        if self.elsewhere is not None and not self.listening:
            self.elsewhere(message)
            return
        self.inbox.put(message)

    @property
    def id(self) -> str:
        return self.record.id


class Cluster(Protocol):
    """The cluster this process is a member of (:class:`shadowproxy.cluster.ClusterMember`), as sessions see it."""

    id: str

    async def restore(self, session_id: str, mount: Mount, principal: str | None) -> LiveSession | None: ...

    async def closed(self, record: SessionRecord) -> None: ...


class SessionManager:
    """The live sessions of one process."""

    def __init__(self, changes: ChangeSink, *, ttl: float, store: SessionStore | None = None) -> None:
        self.changes = changes
        self.ttl = ttl
        self.busy: Callable[[str], bool] | None = None
        """Whether a session is in use (a request in flight, a stream open): not idle, whenever it was last seen."""
        self.store = store
        self.live: Counted[str, LiveSession] = Counted()
        # The 2026-07-28 era's sessions, which the proxy groups by principal and client; they have no header.
        self.logical: Counted[LogicalKey, LiveSession] = Counted()
        self._restoring: dict[str, asyncio.Future[LiveSession | None]] = {}
        self._ended: dict[str, None] = {}
        self.cluster: Cluster | None = None

    def __len__(self) -> int:
        return len(self.live)

    def add(self, session: LiveSession) -> None:
        self.live[session.id] = session
        self.changes.record(session.record)

    def _admit_once(self, principal: str | None, guard: Guard, *, joined: bool = False) -> None:
        """The limits against every session they count (those clients began, and the logical ones of stateless
        requests); ``joined`` says the new session is counted already."""
        held = int(joined)
        total = len(self.live) + len(self.logical) - held
        guard.admit_session(total, self.live.held_by(principal) + self.logical.held_by(principal) - held)

    def admit(self, principal: str | None, guard: Guard, *, joined: bool = False) -> None:
        """Make room for one more session of ``principal``, or raise :class:`LimitExceeded`.

        A logical session is bookkeeping that the next request makes again, so at a limit the least recently
        seen one (the principal's, at its own limit) gives way; only sessions clients began cannot.
        """
        while True:
            try:
                self._admit_once(principal, guard, joined=joined)
                return
            except LimitExceeded as exc:
                everyone = exc.limit == "sessions"
                mine = [key for key, kept in self.logical.items() if everyone or kept.record.principal == principal]
                if not mine:
                    raise
                self._forget_logical(min(mine, key=lambda key: self.logical[key].record.last_seen))

    def add_logical(self, key: LogicalKey, session: LiveSession) -> None:
        self.logical[key] = session
        self.changes.record(session.record)

    def _forget_logical(self, key: LogicalKey) -> None:
        """A logical session idle too long, or giving way at a limit: it is remade by its client's next request."""
        session = self.logical.pop(key)
        session.record.state = SessionState.EXPIRED
        self.changes.record(session.record)
        if session.channel is not None:
            spawn(session.channel.close(), name=f"close-logical-{session.id[8:16]}")

    def get(self, session_id: str) -> LiveSession | None:
        session = self.live.get(session_id)
        if session is not None and session.record.last_seen + self.ttl < time.time():
            if self.busy is not None and self.busy(session_id):
                return session
            self._forget(session, SessionState.EXPIRED)
            return None
        return session

    async def restore(self, session_id: str, mount: Mount, principal: str | None) -> LiveSession | None:
        """A session this process does not hold, brought back from the store (after a restart).

        A cold path: it awaits the store and, for a stdio upstream, a new child's replayed handshake.
        Concurrent requests for the same session share one restore.
        """
        if session_id in self._ended:
            # Ended here a moment ago: the persistence worker may not have written that yet.
            return None
        waiting = self._restoring.get(session_id)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[LiveSession | None] = asyncio.get_running_loop().create_future()
        self._restoring[session_id] = future
        session = None
        try:
            session = await self._restore(session_id, mount, principal)
        except (ShadowProxyError, OSError) as exc:
            log.warning("could not restore session %s: %s", session_id[:8], exc)
        finally:
            del self._restoring[session_id]
            future.set_result(session)
        return session

    async def _restore(self, session_id: str, mount: Mount, principal: str | None) -> LiveSession | None:
        if self.store is None:
            return None
        if self.cluster is not None:
            # Owned by another live instance: forwarded there; else taken over here.
            return await self.cluster.restore(session_id, mount, principal)
        record = await self.store.get(session_id)
        if record is None or not self.usable(record, mount, principal):
            return None
        return await self.resume(record, mount)

    def usable(self, record: SessionRecord, mount: Mount, principal: str | None) -> bool:
        """Whether a stored session may be carried on at ``mount`` for ``principal``."""
        if record.upstream != mount.name or record.state is not SessionState.ACTIVE:
            return False
        if record.principal != principal:
            # Checked before anything starts: a leaked id must not even cost the proxy a child.
            return False
        return record.last_seen + self.ttl >= time.time()

    async def resume(self, record: SessionRecord, mount: Mount) -> LiveSession:
        """Carry a stored session on here: a new channel, resumed with the upstream's session id or the handshake."""
        session = LiveSession(record, mount)
        session.channel = await mount.open_channel(session.on_unsolicited)
        try:
            async with asyncio.timeout(RESTORE_TIMEOUT):
                await session.channel.resume(record.upstream_session_id, record.init_request)
        except BaseException:
            await session.channel.close()
            raise
        self.add(session)
        log.info("restored session %s from the store", record.id[:8])
        return session

    def touch(self, session: LiveSession, *, messages: int = 1, errors: int = 0) -> None:
        """``messages`` passed (``errors`` of them errors): update the counters and hand the change to the worker
        (no await)."""
        record = session.record
        record.last_seen = time.time()
        record.messages += messages
        record.errors += errors
        self.changes.record(record)

    def activate(self, session: LiveSession, protocol_version: str | None) -> None:
        # A channel that stood in until the initialize was answered (the era bridge's DecidingChannel) gives way to
        # the one it decided on.
        settled = getattr(session.channel, "settled", None)
        if settled is not None:
            session.channel = settled
        session.record.state = SessionState.ACTIVE
        if self.cluster is not None:
            session.record.owner = self.cluster.id
        if protocol_version:
            session.record.protocol_version = protocol_version
        self.changes.record(session.record)

    async def close(self, session_id: str, state: SessionState = SessionState.CLOSED, *, announce: bool = True) -> bool:
        """End a live session. In a cluster, ``announce`` tells the other instances holding it to end it too;
        ``announce=False`` is how they hear it: the session ended elsewhere, so it is only let go of here."""
        session = self.live.get(session_id)
        if session is None:
            return False
        if not announce:
            await self._let_go(session, state)
            return True
        await self._close(session, state)
        if self.cluster is not None and state is SessionState.CLOSED:
            await self.cluster.closed(session.record)
        return True

    async def _let_go(self, session: LiveSession, state: SessionState) -> None:
        """Drop this process's hold on a session without ending it upstream or writing its state."""
        self.live.pop(session.id, None)
        session.inbox.fail(JsonRpcError(SESSION_NOT_FOUND, f"session {state.value}"))
        if session.channel is not None:
            try:
                await session.channel.detach()
            except Exception:
                log.exception("letting go of session %s failed", session.id)

    async def _close(self, session: LiveSession, state: SessionState) -> None:
        if self.cluster is not None and state is SessionState.EXPIRED:
            # Idle here is not idle everywhere: other instances may be serving it. The store's ttl
            # expires it for all.
            await self._let_go(session, state)
            return
        self.live.pop(session.id, None)
        session.inbox.fail(JsonRpcError(SESSION_NOT_FOUND, f"session {state.value}"))
        self._end(session, state)
        if session.channel is not None:
            try:
                await session.channel.close()
            except Exception:
                log.exception("closing the upstream channel of session %s failed", session.id)

    def _end(self, session: LiveSession, state: SessionState) -> None:
        """Write the session's end (at the worker's next flush), and never restore it here again."""
        session.record.state = state
        self.changes.record(session.record)
        if len(self._ended) >= MAX_ENDED:
            del self._ended[next(iter(self._ended))]
        self._ended[session.id] = None

    def _forget(self, session: LiveSession, state: SessionState) -> None:
        self.live.pop(session.id, None)
        session.inbox.fail(JsonRpcError(SESSION_NOT_FOUND, f"session {state.value}"))
        if self.cluster is not None and state is SessionState.EXPIRED and session.channel is not None:
            # As in _close: other instances may be serving it.
            spawn(session.channel.detach(), name=f"let-go-session-{session.id[:8]}")
            return
        self._end(session, state)
        if session.channel is not None:
            spawn(session.channel.close(), name=f"close-session-{session.id[:8]}")

    async def expire_idle(self) -> int:
        deadline = time.time() - self.ttl
        busy = self.busy
        # A session with a request in flight (its initialize too) or a stream open is in use, however long it is.
        idle = [s for s in self.live.values() if s.record.last_seen < deadline and (busy is None or not busy(s.id))]
        for session in idle:
            await self._close(session, SessionState.EXPIRED)
        logical = [key for key, session in self.logical.items() if session.record.last_seen < deadline]
        for key in logical:
            self._forget_logical(key)
        return len(idle) + len(logical)

    async def sweep(self, interval: float) -> None:
        """Expire idle sessions forever; run as one background task."""
        while True:
            await asyncio.sleep(interval)
            expired = await self.expire_idle()
            if expired:
                log.info("expired %d idle session(s)", expired)

    async def detach_all(self) -> None:
        """On shutdown: let go of every session but keep it alive in the store, to be restored after a restart."""
        sessions = list(self.live.values())
        self.live.clear()
        for session in sessions:
            session.inbox.fail(JsonRpcError(SESSION_NOT_FOUND, "the proxy is shutting down"))
            self.changes.record(session.record)
        await asyncio.gather(*(session.channel.detach() for session in sessions if session.channel is not None))
