"""ShadowProxy's exceptions.

    ShadowProxyError
    ├── ConfigError         bad configuration; says which key (and file and line when known)
    ├── JsonRpcError        an error that reaches a JSON-RPC peer: code, message, data
    └── UpstreamError       an upstream could not be started, died, or timed out (a JsonRpcError)
        └── UpstreamSessionLost  the upstream no longer has the session: the client must start a new one

An error that can reach a client carries its JSON-RPC ``code``, ``message`` and
``data`` and converts to the wire form with :meth:`JsonRpcError.to_error`.
"""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Implementation-defined server errors (-32000 .. -32099), the first two as the MCP SDKs use them.
UPSTREAM_UNAVAILABLE = -32000
REQUEST_TIMEOUT = -32001
SESSION_NOT_FOUND = -32003
POLICY_BLOCKED = -32010


class ShadowProxyError(Exception):
    """Base of every error ShadowProxy raises on purpose."""


class ConfigError(ShadowProxyError):
    """Configuration that cannot be used. ``key`` names the offending setting."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        self.problem = message
        self.key = key
        self.source = source
        where = " ".join(part for part in (source, f"[{key}]" if key else None) if part)
        super().__init__(f"{where}: {message}" if where else message)


class JsonRpcError(ShadowProxyError):
    """An error with a JSON-RPC code, message and optional data."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        """The ``error`` member of a JSON-RPC error response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class UpstreamError(JsonRpcError):
    """The upstream server could not be reached, died, or did not answer in time."""

    http_status = 502
    retry_after: int | None = None
    """Seconds after which trying again makes sense (``Retry-After``), when the proxy knows."""

    def __init__(self, message: str, *, code: int = UPSTREAM_UNAVAILABLE, data: Any = None) -> None:
        super().__init__(code, message, data)

    @property
    def http_headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None


class UpstreamSessionLost(UpstreamError):
    """The upstream no longer has the session (it restarted, expired it, or its process exited): HTTP 404."""
