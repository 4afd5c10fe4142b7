"""The header checks of the 2026-07-28 HTTP transport, made by the proxy for servers that never see headers.

An HTTP upstream judges its own ``MCP-Protocol-Version``, ``Mcp-Method``,
``Mcp-Name`` and ``Mcp-Param-*`` headers against the body, and the proxy passes
its verdict through. A stdio upstream receives the body alone, so for it the
proxy is the HTTP server and runs the same checks, with the SDK's own
validation ladder, before forwarding.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from mcp.shared.inbound import (
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)

from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.upstreams.base import Channel, final_reply

log = logging.getLogger(__name__)

HEADER_MISMATCH = -32020
METHOD_NOT_FOUND = -32601
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "shadowproxy", "version": "header-check"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def _error(rejection: InboundLadderRejection) -> JsonRpcError:
    data = rejection.data
    if hasattr(data, "model_dump"):
        data = data.model_dump(by_alias=True, exclude_none=True)
    return JsonRpcError(rejection.code, rejection.message, data)


class HeaderCheck:
    """Checks one stateless request's headers against its body; learns tool schemas for ``Mcp-Param-*``."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}
        self._listed = False

    def learn(self, reply: Message) -> None:
        """Keep the input schemas of a ``tools/list`` result that passed by."""
        result = reply.result
        tools = result.get("tools") if isinstance(result, dict) else None
        for tool in tools if isinstance(tools, list) else ():
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                self.schemas[tool["name"]] = tool.get("inputSchema")

    async def check(
        self, message: Message, headers: Iterable[tuple[str, str]], channel: Channel
    ) -> JsonRpcError | None:
        if message.method == "initialize":
            return JsonRpcError(METHOD_NOT_FOUND, "initialize is not a 2026-07-28 method; use server/discover")
        raw = list(headers)
        duplicated = find_duplicated_routing_header(raw)
        if duplicated is not None:
            return JsonRpcError(HEADER_MISMATCH, f"{duplicated} header appears more than once")
        lowered = {name.lower(): value for name, value in raw}
        route = classify_inbound_request(message.data, headers=lowered)
        if isinstance(route, InboundLadderRejection):
            return _error(route)
        params = message.params if isinstance(message.params, dict) else {}
        if message.method != "tools/call" or not isinstance(params.get("name"), str):
            return None
        schema = await self._schema(params["name"], channel)
        if schema is None:
            return None
        arguments = params.get("arguments")
        rejection = validate_mcp_param_headers(schema, arguments if isinstance(arguments, Mapping) else {}, lowered)
        return _error(rejection) if rejection is not None else None

    async def _schema(self, tool: str, channel: Channel) -> Any:
        if tool not in self.schemas and not self._listed:
            self._listed = True
            await self._list(channel)
        return self.schemas.get(tool)

    async def _list(self, channel: Channel) -> None:
        """One ``tools/list`` of the proxy's own, the first time a call names a tool it has not seen listed."""
        data = {"jsonrpc": "2.0", "id": "shadowproxy-tools", "method": "tools/list", "params": {"_meta": META}}
        request = Message(Kind.REQUEST, data)
        try:
            reply = await final_reply(await channel.request(request, {}))
        except JsonRpcError as exc:
            log.warning("could not list tools for the Mcp-Param header check: %s", exc.message)
            return
        self.learn(reply)
