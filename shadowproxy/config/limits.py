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
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field

from shadowproxy.config.validation import Number, Section, Whole
from shadowproxy.core.limit_hits import DEFAULT_JSON_DEPTH, MAX_DEPTH

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


def _depth(value: int) -> int:
    if value > MAX_DEPTH:
        raise ValueError(f"must be at most {MAX_DEPTH} (the JSON decoder stops at 1024)")
    return value


Count = Annotated[Whole, Field(gt=0)]
Seconds = Annotated[Number, Field(gt=0)]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


class Limits(Section):
    """Proxy-wide limits (``limits:`` in the config)."""

    noun: ClassVar[str] = "limit"

    max_json_depth: Annotated[Count, AfterValidator(_depth)] = DEFAULT_JSON_DEPTH
    """Nesting of arrays and objects in any JSON-RPC message, either way."""
    max_sessions: Count = 10_000
    """Live sessions in this process, all transports."""
    max_sessions_per_principal: Count = 1_000
    """Live sessions of one principal; without auth every client is the same (anonymous) principal."""
    max_requests_per_session: Count = 64
    """Requests of one session in flight at once."""
    max_streams_per_session: Count = 4
    """GET streams (listening and resuming) of one Streamable HTTP session."""
    idle_timeout: Seconds = 60.0
    """Seconds a connection may sit without a complete request: idle keep-alives and headers sent slowly."""
    body_timeout: Seconds = 30.0
    """Seconds to receive a request body once its headers are in."""
    max_header_size: Size = 8190
    """Bytes of the request line and of each header field."""
    max_headers: Count = 128


class UpstreamLimits(Section):
    """One stdio server's children (``upstreams.<name>.limits:``); ``None`` leaves the OS limit as it is."""

    noun: ClassVar[str] = "limit"

    cpu: Count | None = None
    """CPU seconds (RLIMIT_CPU): the child gets SIGXCPU, then SIGKILL."""
    memory: Size | None = None
    """Bytes of address space (RLIMIT_AS)."""
    files: Count | None = None
    """Open file descriptors (RLIMIT_NOFILE)."""
    message: Size = 16 * 1024 * 1024
    """Bytes of one message (one stdout line) from the child."""

    @property
    def rlimits(self) -> tuple[tuple[int, int], ...]:
        chosen = (
            (resource.RLIMIT_CPU, self.cpu),
            (resource.RLIMIT_AS, self.memory),
            (resource.RLIMIT_NOFILE, self.files),
        )
        return tuple((which, value) for which, value in chosen if value is not None)
