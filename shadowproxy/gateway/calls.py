"""``tools/call`` on a virtual server: the meta-tools of ``discovery: search``, the result cache, the routing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from shadowproxy.core.errors import INVALID_PARAMS, JsonRpcError
from shadowproxy.core.jsonrpc import Message
from shadowproxy.gateway import merge, search
from shadowproxy.gateway.exchange import Reply
from shadowproxy.gateway.seams import Gateway, Session
from shadowproxy.upstreams.base import Exchange


def unwrap(message: Message) -> Message | None:
    """The ``tools/call`` a ``call_tool`` request stands for, under the same id, so that the chain judges the
    tool really called; ``None`` for any other message."""
    params = message.params
    if message.method != "tools/call" or not isinstance(params, dict) or params.get("name") != search.CALL:
        return None
    arguments = params.get("arguments")
    if not isinstance(arguments, dict) or not isinstance(arguments.get("name"), str):
        return None
    inner = arguments.get("arguments")
    return message.evolve(params={**params, "name": arguments["name"], "arguments": inner or {}})


class Calls:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @staticmethod
    def meta_tools() -> list[dict[str, Any]]:
        return search.META_TOOLS

    async def call(self, channel: Session, message: Message, headers: Mapping[str, str]) -> Exchange:
        gateway = self.gateway
        params = message.params or {}
        name = params.get("name")
        arguments = params.get("arguments") or {}
        if gateway.config.discovery == "search" and name == search.SEARCH:
            return Reply(merge.answer(message, await self.search(channel, message, headers, arguments)))
        unwrapped = unwrap(message) if gateway.config.discovery == "search" else None
        if unwrapped is not None:
            message, params = unwrapped, unwrapped.params or {}
            name, arguments = params.get("name"), params.get("arguments") or {}
        target = gateway.names.tool_target(name) if isinstance(name, str) else None
        if target is None:
            raise JsonRpcError(INVALID_PARAMS, f"unknown tool {name!r}")
        member, tool = target
        key = gateway.results.key(name, gateway.annotations.get(name), channel.scope, arguments)  # type: ignore[arg-type]
        if key is not None:
            cached = gateway.results.get(key)
            if cached is not None:
                return Reply(merge.answer(message, cached))
        routed = message.evolve(params={**params, "name": tool})
        keep = None if key is None else (lambda result: gateway.results.put(key, result))
        return await channel.forward(member, routed, message, headers, keep)

    async def search(
        self, channel: Session, message: Message, headers: Mapping[str, str], arguments: Any
    ) -> dict[str, Any]:
        meta = (message.params or {}).get("_meta")
        listing = message.evolve(method="tools/list", params={"_meta": meta} if isinstance(meta, dict) else None)
        tools = [tool for link in channel.links.values() for tool in await channel.member_list(link, listing, headers)]
        visible = self.gateway.visible
        if visible is not None:
            # Hidden from this principal's tools/list (roles, a rule, a pin): not found either.
            tools = await visible(tools, channel.principal, channel.record)
        try:
            found = search.search(tools, arguments if isinstance(arguments, dict) else {})
        except ValueError as exc:
            return {"content": [{"type": "text", "text": str(exc)}], "isError": True}
        text = orjson.dumps(found).decode()
        return {"content": [{"type": "text", "text": text}], "structuredContent": {"tools": found}}
