"""Limits: what one client, one session or one upstream child may cost the proxy, and what it is told at the edge.

Every limit has a safe default and a key under ``limits:`` (proxy-wide) or ``upstreams.<name>.limits:`` (one
server's children). A limit that is hit answers with a precise error naming the limit, and counts
``shadowproxy_limit_hits_total{limit=...}``. The JSON-RPC code is
:data:`~shadowproxy.core.limit_hits.LIMIT_EXCEEDED` for a session or
request refused for capacity; malformed-by-size input keeps the codec's -32600.
"""

from __future__ import annotations

import re
import resource
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from shadowproxy.core.errors import ConfigError
from shadowproxy.core.limit_hits import DEFAULT_JSON_DEPTH, MAX_DEPTH


@dataclass(frozen=True, slots=True)
class Limits:
    """Proxy-wide limits (``limits:`` in the config)."""

    max_json_depth: int = DEFAULT_JSON_DEPTH
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
