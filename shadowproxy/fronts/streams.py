"""What the two stream fronts (WebSocket, legacy HTTP+SSE) share around their sessions: admitting a new one,
where their routes go, and the live ones at shutdown."""

from __future__ import annotations

from aiohttp import web

from shadowproxy.core.record import SessionRecord, new_session_id
from shadowproxy.fronts import http_limits
from shadowproxy.fronts.principal import PRINCIPAL
from shadowproxy.fronts.stream_session import StreamSession
from shadowproxy.proxy.mount import Mount


def admit(request: web.Request, mount: Mount, *, transport: str, buffer: int, request_timeout: float) -> StreamSession:
    """A new stream session for the caller, if the session limits let one more begin (else ``LimitExceeded``)."""
    principal = request.get(PRINCIPAL)
    mount.sessions.admit(principal, http_limits.guard_of(request))
    record = SessionRecord(id=new_session_id(), upstream=mount.name, principal=principal, transport=transport)
    return StreamSession(record, mount, transport=transport, buffer=buffer, request_timeout=request_timeout)


def stream_places(mounts: list[Mount]) -> list[tuple[str, Mount]]:
    """Where a stream transport's routes go: under each mount's path, and at the root too for a lone upstream."""
    places = [(mount.path, mount) for mount in mounts]
    if len({mount.upstream.name for mount in mounts}) == 1:
        places.append(("", mounts[0]))
    return places


def stream_sessions(mounts: list[Mount]) -> list[StreamSession]:
    """The live stream sessions of ``mounts``, for shutdown."""
    found: list[StreamSession] = []
    for mount in mounts:
        found.extend(s for s in mount.sessions.live.values() if isinstance(s, StreamSession) and s.mount is mount)
    return found
