"""The headers a Streamable HTTP client sends beside each message, for clients whose transport has none.

A client on stdio, WebSocket or legacy SSE sends bare messages; an HTTP upstream needs what a Streamable HTTP
client would have sent with each POST. In the handshake era that is the negotiated ``MCP-Protocol-Version``. A
2026-07-28 request names its version in ``_meta`` and is routed by its headers (SEP-2243): the version,
``Mcp-Method``, ``Mcp-Name`` for the methods that name something, and ``Mcp-Param-*`` for the arguments a tool's
input schema marks with ``x-mcp-header``, made exactly as the SDK client makes them (``mcp.client.session``).
"""

from __future__ import annotations

from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.protocol import VERSION_HEADER, request_protocol_version
from shadowproxy.upstreams.mcp_headers import ToolHeaders, encode_header_value, routing

__all__ = ["ToolHeaders", "client_headers", "encode_header_value"]


def client_headers(message: Message, session_version: str | None, tools: ToolHeaders | None = None) -> dict[str, str]:
    """What a Streamable HTTP client would send with ``message``; ``session_version`` is the one negotiated."""
    version = request_protocol_version(message)
    if version is None:
        return {VERSION_HEADER: session_version} if session_version and message.method != "initialize" else {}
    headers = routing(message, version)
    params = message.params
    if tools is not None and message.method == "tools/call" and isinstance(params, dict):
        name = params.get("name")
        if isinstance(name, str):
            headers.update(tools.headers_for(name, params.get("arguments")))
    return headers
