"""The MCP protocol's constants in one place: its versions, the ``_meta`` keys and HTTP headers the proxy reads,
and what a session record keeps of a client's description of itself."""

from __future__ import annotations

from typing import Any

from shadowproxy.core.jsonrpc import Message

MODERN_VERSION = "2026-07-28"
"""The stateless revision: no handshake, no session header; every request carries its ``_meta``."""
MODERN_VERSIONS = frozenset({MODERN_VERSION})
HANDSHAKE_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
KNOWN_VERSIONS = MODERN_VERSIONS | HANDSHAKE_VERSIONS
DEFAULT_HANDSHAKE_VERSION = "2025-03-26"

META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
CLIENT_FIELD = 256

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
RESUME_HEADER = "last-event-id"
JSON = "application/json"
EVENT_STREAM = "text/event-stream"


def meta_of(message: Message) -> dict[str, Any]:
    params = message.params
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta if isinstance(meta, dict) else {}


def bounded_client_info(value: object) -> dict[str, str] | None:
    """What a session record keeps of a client's ``clientInfo``: its name, title and version, each bounded."""
    if not isinstance(value, dict):
        return None
    kept = {key: value[key][:CLIENT_FIELD] for key in ("name", "title", "version") if isinstance(value.get(key), str)}
    return kept or None


def request_protocol_version(message: Message) -> str | None:
    """The protocol version a 2026-07-28 request names in its ``_meta``."""
    version = meta_of(message).get(META_PROTOCOL_VERSION)
    return version if isinstance(version, str) else None
