"""Admission: how many sessions, requests and streams the process and each session may hold, counted live."""

from __future__ import annotations

from typing import Protocol, TypeVar

from shadowproxy.config.limits import Limits
from shadowproxy.core.limit_hits import LimitExceeded
from shadowproxy.core.record import SessionRecord


class Held(Protocol):
    """A session as admission counts it (a :class:`~shadowproxy.sessions.manager.LiveSession`): by its record."""

    record: SessionRecord


Key = TypeVar("Key")
Session = TypeVar("Session", bound=Held)


class Counted(dict[Key, Session]):
    """Sessions by key, with a running count per principal, so admission is O(1) in the number of sessions.

    Only the writes the session manager makes are counted (``[key] =``, ``pop``, ``clear``); a session's principal
    does not change while it is held here.
    """

    __slots__ = ("principals",)

    def __init__(self) -> None:
        super().__init__()
        self.principals: dict[str | None, int] = {}

    def __setitem__(self, key: Key, session: Session) -> None:
        self.pop(key, None)
        super().__setitem__(key, session)
        principal = session.record.principal
        self.principals[principal] = self.principals.get(principal, 0) + 1

    def pop(self, key: Key, *default: Session | None) -> Session | None:  # type: ignore[override]
        if key not in self:
            return super().pop(key, *default)
        session = super().pop(key)
        principal = session.record.principal
        left = self.principals[principal] - 1
        if left:
            self.principals[principal] = left
        else:
            del self.principals[principal]
        return session

    def clear(self) -> None:
        super().clear()
        self.principals.clear()

    def held_by(self, principal: str | None) -> int:
        return self.principals.get(principal, 0)


class Slots:
    """How many of something each session holds at once, refused past ``cap``."""

    __slots__ = ("cap", "held", "name", "what")

    def __init__(self, cap: int, name: str, what: str) -> None:
        self.cap = cap
        self.name = name
        self.what = what
        self.held: dict[str, int] = {}

    def enter(self, session_id: str) -> None:
        """Take one, or raise :class:`LimitExceeded` (429)."""
        count = self.held.get(session_id, 0)
        if count >= self.cap:
            raise self.refuse(count)
        self.held[session_id] = count + 1

    def refuse(self, count: int) -> LimitExceeded:
        """The refusal for a session that holds ``count`` already (stream sessions count their own)."""
        return LimitExceeded(
            self.name, 429, f"this session has {count} {self.what}, its maximum (limits.max_{self.name})"
        )

    def leave(self, session_id: str) -> None:
        count = self.held.pop(session_id, 1) - 1
        if count > 0:
            self.held[session_id] = count


class Guard:
    """The limits of one process and the live counts they are checked against (on the aiohttp app)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.requests = Slots(limits.max_requests_per_session, "requests_per_session", "requests in flight")
        self.streams = Slots(limits.max_streams_per_session, "streams_per_session", "GET streams")

    def busy(self, session_id: str) -> bool:
        """Whether the session has a request in flight or a GET stream open."""
        return session_id in self.requests.held or session_id in self.streams.held

    def admit_session(self, total: int, mine: int) -> None:
        """Raise :class:`LimitExceeded` when one more session would be too many: ``total`` held in the process,
        ``mine`` by the principal asking (both counted without the new one)."""
        limits = self.limits
        if total >= limits.max_sessions:
            text = f"the proxy holds its maximum of {limits.max_sessions} sessions (limits.max_sessions)"
            raise LimitExceeded("sessions", 503, text)
        if mine >= limits.max_sessions_per_principal:
            cap = limits.max_sessions_per_principal
            text = f"this principal holds its maximum of {cap} sessions (limits.max_sessions_per_principal)"
            raise LimitExceeded("sessions_per_principal", 429, text)
