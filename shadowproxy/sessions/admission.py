"""Admission: how many sessions, requests and streams the process and each session may hold, counted live."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from shadowproxy.config.limits import Limits
from shadowproxy.core.limit_hits import LimitExceeded
from shadowproxy.core.record import SessionRecord


class Held(Protocol):
    """A session as admission counts it (a :class:`~shadowproxy.sessions.manager.LiveSession`): by its record."""

    record: SessionRecord


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

    def admit_session(self, live: Iterable[Held], principal: str | None, *, joined: bool = False) -> None:
        """Raise :class:`LimitExceeded` when one more session of ``principal`` would be too many.

        Counted from the live sessions (a scan, on session start only), so there is no second count to drift;
        ``joined`` says the new session is among ``live`` already.
        """
        limits = self.limits
        total = mine = -1 if joined else 0
        for session in live:
            total += 1
            mine += session.record.principal == principal
        if total >= limits.max_sessions:
            text = f"the proxy holds its maximum of {limits.max_sessions} sessions (limits.max_sessions)"
            raise LimitExceeded("sessions", 503, text)
        if mine >= limits.max_sessions_per_principal:
            cap = limits.max_sessions_per_principal
            text = f"this principal holds its maximum of {cap} sessions (limits.max_sessions_per_principal)"
            raise LimitExceeded("sessions_per_principal", 429, text)
