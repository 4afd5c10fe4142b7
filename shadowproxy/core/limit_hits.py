"""A limit hit: the error that says so and the counter that counts it.

The limits themselves are configuration (:mod:`shadowproxy.config.limits`); what refuses at the HTTP edge is
:mod:`shadowproxy.fronts.http_limits`.
"""

from __future__ import annotations

from prometheus_client import Counter

from shadowproxy.core.errors import INVALID_REQUEST, JsonRpcError

LIMIT_EXCEEDED = -32005
"""A session, request or stream refused because a limit is reached (HTTP 429, or 503 for the proxy's total)."""

MAX_DEPTH = 1000
DEFAULT_JSON_DEPTH = 64
"""``limits.max_json_depth`` unless configured."""

HITS = Counter("shadowproxy_limit_hits", "Requests, messages and connections refused or cut by a limit.", ["limit"])


def hit(limit: str) -> None:
    HITS.labels(limit).inc()


class LimitExceeded(JsonRpcError):
    """A refusal by a limit, with the HTTP status it is sent with; counted when it is made."""

    def __init__(self, limit: str, status: int, message: str) -> None:
        super().__init__(LIMIT_EXCEEDED if status != 408 else INVALID_REQUEST, message, {"limit": limit})
        self.limit = limit
        self.status = status
        hit(limit)
