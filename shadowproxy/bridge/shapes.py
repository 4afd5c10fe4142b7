"""The 2026-07-28 shapes the bridge makes from handshake-era messages, and the reverse: pure functions.

A handshake-era server never sees the 2026-07-28 envelope (an SDK server on a handshake connection refuses a
request carrying it), and a 2026-07-28 client gets the fields its schema requires: ``resultType`` on every
result, the cache hints on cacheable ones, ``supportedVersions`` on ``server/discover``.
"""

from __future__ import annotations

from typing import Any

from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.protocol import (
    HANDSHAKE_VERSIONS,
    META_CLIENT_INFO,
    META_PROTOCOL_VERSION,
    MODERN_VERSION,
)
from shadowproxy.upstreams.mcp_headers import routing

ENVELOPE_PREFIX = "io.modelcontextprotocol/"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
SERVER_INFO = "io.modelcontextprotocol/serverInfo"
LOG_LEVEL = "io.modelcontextprotocol/logLevel"
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
"""Syslog's severities, least first: a 2026-07-28 client gets the log messages at or above the level it names."""
REMOVED = frozenset({"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"})
"""Handshake-era methods that 2026-07-28 removed: a 2026-07-28 client asking one gets method-not-found, as from a
2026-07-28 server, though the handshake-era server behind the bridge would answer it."""
CACHEABLE = frozenset(
    {"prompts/list", "resources/list", "resources/read", "resources/templates/list", "server/discover", "tools/list"}
)
"""The methods whose 2026-07-28 results carry ``ttlMs`` and ``cacheScope``."""
INPUT_REQUIRED = frozenset({"tools/call", "prompts/get", "resources/read"})
"""The requests a 2026-07-28 server may answer with an ``InputRequiredResult``."""
RETRY_FIELDS = ("inputResponses", "requestState")
HANDSHAKE_VERSION = "2025-11-25"


def strip_envelope(message: Message, request_id: object) -> Message:
    """``message`` as a handshake-era server reads it: the 2026-07-28 ``_meta`` keys and the retry fields gone,
    the id the bridge's own (``progressToken`` is kept: the server reports progress against it)."""
    params = message.params
    if not isinstance(params, dict):
        return message.evolve(id=request_id)
    kept = {key: value for key, value in params.items() if key not in RETRY_FIELDS}
    meta = params.get("_meta")
    if isinstance(meta, dict):
        inner = {key: value for key, value in meta.items() if not key.startswith(ENVELOPE_PREFIX)}
        if inner:
            kept["_meta"] = inner
        else:
            kept.pop("_meta", None)
    return message.evolve(id=request_id, params=kept)


def log_floor(message: Message) -> int | None:
    """The index in :data:`LOG_LEVELS` of the lowest level of log message a 2026-07-28 request wants; ``None``:
    it wants none (it named no level)."""
    params = message.params
    meta = params.get("_meta") if isinstance(params, dict) else None
    level = meta.get(LOG_LEVEL) if isinstance(meta, dict) else None
    return LOG_LEVELS.index(level) if level in LOG_LEVELS else None


def logged_at(message: Message) -> int:
    """The index in :data:`LOG_LEVELS` of a ``notifications/message``'s level (an unknown one counts as info)."""
    level = (message.params or {}).get("level")
    return LOG_LEVELS.index(level) if level in LOG_LEVELS else 1


def client_capabilities(message: Message) -> dict[str, Any]:
    params = message.params
    meta = params.get("_meta") if isinstance(params, dict) else None
    capabilities = meta.get(META_CLIENT_CAPABILITIES) if isinstance(meta, dict) else None
    return capabilities if isinstance(capabilities, dict) else {}


def initialize_request(capabilities: dict[str, Any], client_info: dict[str, Any]) -> dict[str, Any]:
    """The params of the ``initialize`` the bridge sends for a pooled session."""
    return {"protocolVersion": HANDSHAKE_VERSION, "capabilities": capabilities, "clientInfo": client_info}


def modern_result(method: str | None, result: Any) -> Any:
    """A handshake-era result with the fields a 2026-07-28 client validates (ones already present are kept)."""
    if not isinstance(result, dict):
        return result
    if "resultType" in result and (method not in CACHEABLE or "ttlMs" in result):
        return result
    shaped = {**result}
    shaped.setdefault("resultType", "complete")
    if method in CACHEABLE:
        shaped.setdefault("ttlMs", 0)
        shaped.setdefault("cacheScope", "private")
    return shaped


def discover_result(initialized: dict[str, Any]) -> dict[str, Any]:
    """``server/discover`` answered from the upstream's ``initialize`` result."""
    result: dict[str, Any] = {
        "supportedVersions": [MODERN_VERSION],
        "capabilities": initialized.get("capabilities") or {},
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
    }
    if isinstance(initialized.get("serverInfo"), dict):
        result["_meta"] = {SERVER_INFO: initialized["serverInfo"]}
    if isinstance(initialized.get("instructions"), str):
        result["instructions"] = initialized["instructions"]
    return result


def input_required(key: str, server_request: Message, state: str) -> dict[str, Any]:
    """The ``InputRequiredResult`` that carries one server-to-client request to a 2026-07-28 client."""
    embedded: dict[str, Any] = {"method": server_request.method}
    if server_request.params is not None:
        embedded["params"] = server_request.params
    return {"resultType": "input_required", "inputRequests": {key: embedded}, "requestState": state}


def retry_fields(message: Message) -> tuple[dict[str, Any] | None, str | None]:
    """The ``inputResponses`` and ``requestState`` of a client's retry, when it is one."""
    params = message.params
    if not isinstance(params, dict):
        return None, None
    responses, state = params.get("inputResponses"), params.get("requestState")
    return (responses if isinstance(responses, dict) else None), (state if isinstance(state, str) else None)


def envelope(message: Message, client: dict[str, Any]) -> Message:
    """``message`` with the 2026-07-28 ``_meta`` a handshake-era client's session stands for (``client``: its
    ``protocolVersion``-free ``clientInfo`` and ``capabilities``)."""
    params = message.params if isinstance(message.params, dict) else {}
    meta = params.get("_meta")
    stamped = {
        **(meta if isinstance(meta, dict) else {}),
        META_PROTOCOL_VERSION: MODERN_VERSION,
        META_CLIENT_INFO: client.get("clientInfo") or {"name": "unknown", "version": "0"},
        META_CLIENT_CAPABILITIES: client.get("capabilities") or {},
    }
    # What the client's logging/setLevel asked, said per request as 2026-07-28 has it; before it asks, every level,
    # as a handshake-era server sends what it logs until told otherwise.
    level = client.get("logLevel")
    stamped[LOG_LEVEL] = level if level in LOG_LEVELS else LOG_LEVELS[0]
    return message.evolve(params={**params, "_meta": stamped})


def modern_headers(message: Message) -> dict[str, str]:
    """The 2026-07-28 HTTP headers of a request: its version, method and (for the three that name one) name; an
    HTTP upstream adds the ``Mcp-Param-*`` of a tool call (:mod:`shadowproxy.upstreams.mcp_headers`)."""
    return routing(message, MODERN_VERSION)


def initialize_result(discovered: dict[str, Any], asked_version: object) -> dict[str, Any]:
    """A handshake-era ``initialize`` answered from the server's ``server/discover``."""
    version = asked_version if asked_version in HANDSHAKE_VERSIONS else HANDSHAKE_VERSION
    meta = discovered.get("_meta")
    server_info = meta.get(SERVER_INFO) if isinstance(meta, dict) else None
    result: dict[str, Any] = {
        "protocolVersion": version,
        "capabilities": discovered.get("capabilities") or {},
        "serverInfo": server_info if isinstance(server_info, dict) else {"name": "unknown", "version": "0"},
    }
    if isinstance(discovered.get("instructions"), str):
        result["instructions"] = discovered["instructions"]
    return result
