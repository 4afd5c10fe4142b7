"""The 2026-07-28 routing headers of a request, made from its body (SEP-2243).

A 2026-07-28 request over HTTP carries ``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` (for the methods
that name something) and ``Mcp-Param-*`` (for the arguments a tool's input schema marks with ``x-mcp-header``),
mirrored from its body; a server rejects a request whose headers and body differ (-32020). A client's headers
describe the body it sent, so they are passed on as they are while the body is; a body the proxy changed (a
virtual server's names, the era bridge's envelope, a rule's ``modify``, a token restored) gets them made again
(:func:`rebuilt`, called by :class:`~shadowproxy.upstreams.http.HttpChannel` for every such body).

``Mcp-Param-*`` needs the tool's input schema: :class:`UpstreamTools` keeps the maps of one upstream's tools,
listed by the proxy itself the first time a changed call needs one. The SDK reads the schemas: it takes half a
second and 30 MiB to load, so it is loaded, off the event loop, only once a listing carries an annotation.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import logging
import re
import sys
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import RESPONSE, Kind, Message
from shadowproxy.core.protocol import MODERN_VERSIONS, VERSION_HEADER, meta_of, request_protocol_version
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.base import Channel, final_reply

log = logging.getLogger(__name__)

METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
PARAM_PREFIX = "mcp-param-"
NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
"""The methods whose name (or URI) goes in ``Mcp-Name``: the SDK's ``NAME_BEARING_METHODS``."""
ROUTING = frozenset({VERSION_HEADER.lower(), METHOD_HEADER.lower(), NAME_HEADER.lower()})
MAX_TOOLS = 4096
"""The most tools whose ``Mcp-Param-*`` maps are kept per client or upstream; a listing cannot grow memory past it."""
RELIST_AFTER = 60.0
"""Seconds after which a changed call of a tool the last listing did not name lists the upstream's tools again."""

_HEADER_SAFE = re.compile(r"[\x20-\x7E]*")
_BASE64_SENTINEL = re.compile(r"=\?base64\?.*\?=")
_INBOUND = "mcp.shared.inbound"
_ANNOTATION = b"x-mcp-header"


def encode_header_value(value: str) -> str:
    """``value`` as is when it survives an HTTP field unchanged, else in the ``=?base64?…?=`` sentinel."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _BASE64_SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode('ascii')}?="


def routing(message: Message, version: str) -> dict[str, str]:
    """``MCP-Protocol-Version``, ``Mcp-Method`` and ``Mcp-Name`` of a 2026-07-28 message, from its body."""
    headers = {VERSION_HEADER: version}
    method = message.method
    if method is None:
        return headers
    headers[METHOD_HEADER] = method
    key = NAME_PARAMS.get(method)
    params = message.params
    name = params.get(key) if key is not None and isinstance(params, dict) else None
    if isinstance(name, str):
        headers[NAME_HEADER] = encode_header_value(name)
    return headers


async def rebuilt(
    message: Message, passed: Mapping[str, str], tools: UpstreamTools, channel: Channel
) -> Mapping[str, str]:
    """``passed`` with the routing headers made from ``message``'s body, for a body the proxy changed.

    A handshake-era message keeps ``passed`` (its headers mirror nothing of the body). When the upstream's tools
    cannot be listed, the ``Mcp-Param-*`` headers passed stay as they were.
    """
    version = request_protocol_version(message)
    if version is None:
        version = next((value for name, value in passed.items() if name.lower() == "mcp-protocol-version"), None)
        if version not in MODERN_VERSIONS or message.method is None:
            return passed
    assert version is not None
    params_of_tool: dict[str, str] | None = None
    params = message.params
    if message.method == "tools/call" and isinstance(params, dict) and isinstance(params.get("name"), str):
        params_of_tool = await tools.headers_for(channel, message, params["name"], params.get("arguments"))
    headers = {}
    for name, value in passed.items():
        lower = name.lower()
        if lower in ROUTING or (params_of_tool is not None and lower.startswith(PARAM_PREFIX)):
            continue
        headers[name] = value
    headers.update(routing(message, version))
    if params_of_tool:
        headers.update(params_of_tool)
    return headers


class ToolHeaders:
    """The ``Mcp-Param-*`` maps of the tools one listing named, kept as the SDK client keeps them.

    A client sends ``Mcp-Param-*`` only for a tool it has listed, so a front learns the maps from the ``tools/list``
    answers it carries to its client, in the 2026-07-28 era; :class:`UpstreamTools` from the upstream's own.
    """

    __slots__ = ("maps",)

    def __init__(self) -> None:
        self.maps: dict[str, dict[tuple[str, ...], str]] = {}

    async def learn(self, request: Message, answer: Message) -> set[str]:
        """Keep the maps of the tools in the answer to a ``tools/list``; a listing of one page forgets the rest.
        The names listed."""
        result = answer.result
        listed: set[str] = set()
        if request.method != "tools/list" or answer.kind is not RESPONSE or not isinstance(result, dict):
            return listed
        tools = result.get("tools")
        if not isinstance(tools, list):
            return listed
        cursor = request.params.get("cursor") if isinstance(request.params, dict) else None
        complete = cursor is None and result.get("nextCursor") is None
        inbound = await _inbound() if _ANNOTATION in answer.to_bytes() else None
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
        return listed

    def headers_for(self, tool: str, arguments: Any) -> dict[str, str]:
        """The ``Mcp-Param-*`` headers of a call of ``tool`` with ``arguments``."""
        header_map = self.maps.get(tool)
        if header_map is None:
            return {}
        # A map is only kept once the SDK has loaded.
        inbound = sys.modules[_INBOUND]
        return inbound.mcp_param_headers(header_map, arguments if isinstance(arguments, Mapping) else {})  # type: ignore[no-any-return]


class UpstreamTools:
    """The ``Mcp-Param-*`` maps of one HTTP upstream's tools, for the calls whose body the proxy changed.

    Listed by the proxy (every page) the first time a changed call needs them, and again when a call names a tool
    the last listing did not and that listing is over :data:`RELIST_AFTER` seconds old. Concurrent calls share one
    listing.
    """

    def __init__(self) -> None:
        self.tools = ToolHeaders()
        self.known: set[str] = set()
        self.listed_at: float | None = None
        self._listing: asyncio.Task[bool] | None = None

    async def headers_for(self, channel: Channel, call: Message, tool: str, arguments: Any) -> dict[str, str] | None:
        """The call's ``Mcp-Param-*`` headers; ``None`` when the upstream's tools could not be listed."""
        stale = self.listed_at is None or time.monotonic() - self.listed_at > RELIST_AFTER
        if tool not in self.known and stale and not await self._list(channel, call):
            return None
        return self.tools.headers_for(tool, arguments)

    async def _list(self, channel: Channel, call: Message) -> bool:
        if self._listing is None or self._listing.done():
            self._listing = spawn(self._run(channel, call), name="mcp-param-listing")
        return await asyncio.shield(self._listing)

    async def _run(self, channel: Channel, call: Message) -> bool:
        try:
            listed = await self._pages(channel, call)
        except (JsonRpcError, OSError) as exc:
            log.warning("could not list the upstream's tools for the Mcp-Param headers of a changed call: %s", exc)
            return False
        self.known = listed
        self.listed_at = time.monotonic()
        return True

    async def _pages(self, channel: Channel, call: Message) -> set[str]:
        # The call's own _meta says who asks (version, client, capabilities); nothing else of it is the listing's.
        meta = {key: value for key, value in meta_of(call).items() if key.startswith("io.modelcontextprotocol/")}
        listed: set[str] = set()
        cursor: str | None = None
        for page in range(1000):
            params: dict[str, Any] = {"_meta": meta}
            if cursor is not None:
                params["cursor"] = cursor
            request = Message(
                Kind.REQUEST,
                {"jsonrpc": "2.0", "id": f"shadowproxy-params-{page}", "method": "tools/list", "params": params},
            )
            reply = await final_reply(await channel.request(request, {}))
            if reply.error is not None:
                raise JsonRpcError(int(reply.error.get("code", -32603)), str(reply.error.get("message")))
            listed |= await self.tools.learn(request, reply)
            next_cursor = reply.result.get("nextCursor") if isinstance(reply.result, dict) else None
            if not isinstance(next_cursor, str):
                break
            cursor = next_cursor
        return listed


async def _inbound() -> ModuleType:
    module = sys.modules.get(_INBOUND)
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, _INBOUND)
    return module
