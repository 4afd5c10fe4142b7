"""The headers a Streamable HTTP client sends beside each message, for clients whose transport has none.

A client on stdio, WebSocket or legacy SSE sends bare messages; an HTTP upstream needs what a Streamable HTTP
client would have sent with each POST. In the handshake era that is the negotiated ``MCP-Protocol-Version``. A
2026-07-28 request names its version in ``_meta`` and is routed by its headers (SEP-2243): the version,
``Mcp-Method``, ``Mcp-Name`` for the methods that name something, and ``Mcp-Param-*`` for the arguments a tool's
input schema marks with ``x-mcp-header``, made exactly as the SDK client makes them (``mcp.client.session``).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import re
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from shadowproxy.core.jsonrpc import RESPONSE, Message
from shadowproxy.core.protocol import VERSION_HEADER, request_protocol_version

METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
"""The methods whose name (or URI) goes in ``Mcp-Name``: the SDK's ``NAME_BEARING_METHODS``."""
MAX_TOOLS = 4096
"""The most tools a session keeps ``Mcp-Param-*`` maps for; a listing cannot grow memory past it."""

_HEADER_SAFE = re.compile(r"[\x20-\x7E]*")
_BASE64_SENTINEL = re.compile(r"=\?base64\?.*\?=")
_INBOUND = "mcp.shared.inbound"
_ANNOTATION = b"x-mcp-header"


def client_headers(message: Message, session_version: str | None, tools: ToolHeaders | None = None) -> dict[str, str]:
    """What a Streamable HTTP client would send with ``message``; ``session_version`` is the one negotiated."""
    version = request_protocol_version(message)
    method = message.method
    if version is None:
        return {VERSION_HEADER: session_version} if session_version and method != "initialize" else {}
    headers = {VERSION_HEADER: version}
    if method is None:
        return headers
    headers[METHOD_HEADER] = method
    key = NAME_PARAMS.get(method)
    params = message.params
    if key is None or not isinstance(params, dict):
        return headers
    name = params.get(key)
    if isinstance(name, str):
        headers[NAME_HEADER] = encode_header_value(name)
        if tools is not None and method == "tools/call":
            headers.update(tools.headers_for(name, params.get("arguments")))
    return headers


def encode_header_value(value: str) -> str:
    """``value`` as is when it survives an HTTP field unchanged, else in the ``=?base64?…?=`` sentinel."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _BASE64_SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode('ascii')}?="


class ToolHeaders:
    """The ``Mcp-Param-*`` maps of the tools one client listed, kept as the SDK client keeps them.

    A client sends ``Mcp-Param-*`` only for a tool it has listed, so the proxy learns the maps from the
    ``tools/list`` answers it carries to that client, in the 2026-07-28 era. The SDK reads the schemas: it
    takes half a second and 30 MiB to load, so it is loaded, off the event loop, only once a listing
    carries an ``x-mcp-header`` annotation.
    """

    __slots__ = ("maps",)

    def __init__(self) -> None:
        self.maps: dict[str, dict[tuple[str, ...], str]] = {}

    async def learn(self, request: Message, answer: Message) -> None:
        """Keep the maps of the tools in the answer to a ``tools/list``; a listing of one page forgets the rest."""
        result = answer.result
        if request.method != "tools/list" or answer.kind is not RESPONSE or not isinstance(result, dict):
            return
        tools = result.get("tools")
        if not isinstance(tools, list):
            return
        cursor = request.params.get("cursor") if isinstance(request.params, dict) else None
        complete = cursor is None and result.get("nextCursor") is None
        inbound = await _inbound() if _ANNOTATION in answer.to_bytes() else None
        listed: set[str] = set()
        for tool in tools:
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str):
                continue
            listed.add(name)
            schema = tool.get("inputSchema")
            # A tool with an invalid annotation is dropped by a conforming client: no headers for it.
            if inbound is None or inbound.find_invalid_x_mcp_header(schema) is not None:
                self.maps.pop(name, None)
                continue
            header_map = inbound.x_mcp_header_map(schema)
            if not header_map:
                self.maps.pop(name, None)
            elif name in self.maps or len(self.maps) < MAX_TOOLS:
                self.maps[name] = header_map
        if complete:
            self.maps = {name: kept for name, kept in self.maps.items() if name in listed}

    def headers_for(self, tool: str, arguments: Any) -> dict[str, str]:
        """The ``Mcp-Param-*`` headers of a call of ``tool`` with ``arguments``."""
        header_map = self.maps.get(tool)
        if header_map is None:
            return {}
        # A map is only kept once the SDK has loaded.
        inbound = sys.modules[_INBOUND]
        return inbound.mcp_param_headers(header_map, arguments if isinstance(arguments, Mapping) else {})  # type: ignore[no-any-return]


async def _inbound() -> ModuleType:
    module = sys.modules.get(_INBOUND)
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, _INBOUND)
    return module
