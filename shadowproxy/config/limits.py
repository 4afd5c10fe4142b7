"""Limits: what one client, one session or one upstream child may cost the proxy, and what it is told at the edge.

Every limit has a safe default and a key under ``limits:`` (proxy-wide) or ``upstreams.<name>.limits:`` (one
server's children). A limit that is hit answers with a precise error naming the limit, and counts
``shadowproxy_limit_hits_total{limit=...}``. The JSON-RPC code is :data:`LIMIT_EXCEEDED` for a session or
request refused for capacity; malformed-by-size input keeps the codec's -32600.
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import Counter

from shadowproxy.core import logs
from shadowproxy.core.errors import INVALID_REQUEST, ConfigError, JsonRpcError

if TYPE_CHECKING:
    from shadowproxy.sessions.manager import LiveSession

log = logging.getLogger(__name__)

LIMIT_EXCEEDED = -32005
"""A session, request or stream refused because a limit is reached (HTTP 429, or 503 for the proxy's total)."""

MAX_DEPTH = 1000

HITS = Counter("shadowproxy_limit_hits", "Requests, messages and connections refused or cut by a limit.", ["limit"])


def hit(limit: str) -> None:
    HITS.labels(limit).inc()


@dataclass(frozen=True, slots=True)
class Limits:
    """Proxy-wide limits (``limits:`` in the config)."""

    max_json_depth: int = 64
    """Nesting of arrays and objects in any JSON-RPC message, either way."""
    max_sessions: int = 10_000
    """Live sessions in this process, all transports."""
    max_sessions_per_principal: int = 1_000
    """Live sessions of one principal; without auth every client is the same (anonymous) principal."""
    max_requests_per_session: int = 64
    """Requests of one session in flight at once."""
    max_streams_per_session: int = 4
    """GET streams (listening and resuming) of one Streamable HTTP session."""
    idle_timeout: float = 60.0
    """Seconds a connection may sit without a complete request: idle keep-alives and headers sent slowly."""
    body_timeout: float = 30.0
    """Seconds to receive a request body once its headers are in."""
    max_header_size: int = 8190
    """Bytes of the request line and of each header field."""
    max_headers: int = 128


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    """One stdio server's children (``upstreams.<name>.limits:``); ``None`` leaves the OS limit as it is."""

    cpu: int | None = None
    """CPU seconds (RLIMIT_CPU): the child gets SIGXCPU, then SIGKILL."""
    memory: int | None = None
    """Bytes of address space (RLIMIT_AS)."""
    files: int | None = None
    """Open file descriptors (RLIMIT_NOFILE)."""
    message: int = 16 * 1024 * 1024
    """Bytes of one message (one stdout line) from the child."""

    @property
    def rlimits(self) -> tuple[tuple[int, int], ...]:
        chosen = (
            (resource.RLIMIT_CPU, self.cpu),
            (resource.RLIMIT_AS, self.memory),
            (resource.RLIMIT_NOFILE, self.files),
        )
        return tuple((which, value) for which, value in chosen if value is not None)


_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(value: Any) -> int:
    """``512MiB``, ``4MB``, ``1024`` -> bytes; binary units for ``Ki``/``Mi``/``Gi``, decimal for ``K``/``M``/``G``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"must be a size like 512MiB or a number of bytes, not {value!r}")
    unit = (match.group(2) or "").lower()
    factor = 1024 ** ("kmgt".index(unit[0]) + 1) if "i" in unit else _UNITS[unit[:1]]
    return int(match.group(1)) * factor


_SIZES = frozenset({"max_header_size", "memory", "message"})
_NULLABLE = frozenset({"cpu", "memory", "files"})


def _values(cls: type, raw: Any, key: str, source: str | None) -> dict[str, Any]:
    """Check ``raw`` against ``cls``'s fields: known keys, positive numbers, sizes where a size is meant."""
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping", key=key, source=source)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"{key}.{name}"
        if name not in known:
            raise ConfigError(f"unknown limit; known limits are: {', '.join(known)}", key=where, source=source)
        if value is None and name in _NULLABLE:
            values[name] = None
            continue
        try:
            if isinstance(value, bool) or value is None:
                raise ValueError(f"must be a number, not {value!r}")
            number = parse_size(value) if name in _SIZES else float(value)
        except (TypeError, ValueError) as exc:
            text = str(exc) if "must be" in str(exc) else f"must be a number, not {value!r}"
            raise ConfigError(text, key=where, source=source) from None
        if number <= 0:
            raise ConfigError("must be greater than 0", key=where, source=source)
        values[name] = float(number) if known[name].type == "float" else int(number)
    return values


def parse_limits(raw: Any, *, source: str | None = None) -> Limits:
    """The ``limits:`` section; errors name ``limits.<key>``."""
    limits = Limits(**_values(Limits, raw, "limits", source))
    if limits.max_json_depth > MAX_DEPTH:
        text = f"must be at most {MAX_DEPTH} (the JSON decoder stops at 1024)"
        raise ConfigError(text, key="limits.max_json_depth", source=source)
    return limits


def parse_upstream_limits(raw: Any, *, key: str, source: str | None = None) -> UpstreamLimits:
    """``upstreams.<name>.limits``: cpu, memory, files (``null``: the OS default) and message."""
    return UpstreamLimits(**_values(UpstreamLimits, raw, key, source))


# -- JSON nesting ---------------------------------------------------------------------------------------------------


def too_deep(raw: bytes, data: Any, limit: int) -> bool:
    """Whether ``data`` (decoded from ``raw``) nests deeper than ``limit``.

    Counting brackets in the bytes is one C pass; only a message with more than ``limit`` of them is walked.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return _deeper(data, limit)


def _deeper(node: Any, budget: int) -> bool:
    if budget == 0:
        return True
    for value in node.values() if type(node) is dict else node:
        kind = type(value)
        if (kind is dict or kind is list) and _deeper(value, budget - 1):
            return True
    return False


# -- the HTTP edge ---------------------------------------------------------------------------------------------------


class LimitExceeded(JsonRpcError):
    """A refusal by a limit, with the HTTP status it is sent with; counted when it is made."""

    def __init__(self, limit: str, status: int, message: str) -> None:
        super().__init__(LIMIT_EXCEEDED if status != 408 else INVALID_REQUEST, message, {"limit": limit})
        self.limit = limit
        self.status = status
        hit(limit)


def refusal(error: LimitExceeded, request_id: object = None) -> web.Response:
    """The HTTP answer to a refusal: its status, a JSON-RPC error, and ``Retry-After`` when waiting helps."""
    body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": error.to_error()})
    headers = {"Retry-After": "1"} if error.status in (429, 503) else None
    return web.Response(body=body, status=error.status, content_type="application/json", headers=headers)


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

    def admit_session(self, live: Iterable[LiveSession], principal: str | None, *, joined: bool = False) -> None:
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


GUARD = web.AppKey("limits", Guard)
_DEFAULT_GUARD = Guard(Limits())


def install(app: web.Application, guard: Guard) -> None:
    """Put the process's :class:`Guard` on ``app``, before it starts, for the handlers it routes."""
    app[GUARD] = guard


def guard_of(request: web.Request) -> Guard:
    """The app's guard; an app assembled without :func:`install` (some stream tests) gets the defaults."""
    return request.config_dict.get(GUARD, _DEFAULT_GUARD)


def hold_stream(request: web.Request, session_id: str) -> None:
    """Count one GET stream of ``session_id`` until its handler ends, or raise :class:`LimitExceeded`."""
    streams = guard_of(request).streams
    streams.enter(session_id)
    task = asyncio.current_task()
    assert task is not None
    # aiohttp runs each request in a task of its own, so the stream is over when that task is.
    task.add_done_callback(lambda _: streams.leave(session_id))


def server_options(limits: Limits) -> dict[str, Any]:
    """aiohttp's own knobs; its keep-alive timer also closes a connection whose headers never complete."""
    return {
        "keepalive_timeout": limits.idle_timeout,
        "max_line_size": limits.max_header_size,
        "max_field_size": limits.max_header_size,
        "max_headers": limits.max_headers,
    }


async def read_body(request: web.BaseRequest, body_timeout: float) -> bytes | web.Response:
    """The request body within ``limits.body_timeout``, or the 408 already sent to a client that trickles it.

    aiohttp has no body read timeout, and after an answer it would go on reading the rest of the body for its
    lingering time; the connection is closed as soon as the 408 is out instead.
    """
    if request.content.is_eof():
        # The whole body came with the headers (the usual case): nothing to wait for, so no timer.
        return await request.read()
    try:
        async with asyncio.timeout(body_timeout):
            return await request.read()
    except TimeoutError:
        pass
    text = f"the body did not arrive within {body_timeout:g}s (limits.body_timeout)"
    error = LimitExceeded("body_timeout", 408, text)
    log.warning("a client sent its body too slowly; closing its connection")
    response = refusal(error)
    response.force_close()
    # Sent from here, before the front door could tag it.
    logs.tag(response.headers)
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


# -- upstream children -----------------------------------------------------------------------------------------------


def preexec(limits: UpstreamLimits) -> Callable[[], None] | None:
    """What the forked child runs before exec: system calls only, on values computed here, so it takes no lock.

    Soft and hard limit both, so the server cannot raise them again; never above the proxy's own hard limit,
    which an unprivileged process cannot exceed (the child would fail to start).
    """
    chosen = limits.rlimits
    if not chosen:
        return None

    def apply() -> None:
        for which, value in chosen:
            hard = resource.getrlimit(which)[1]
            bound = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (bound, bound))

    return apply
