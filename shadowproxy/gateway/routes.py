"""Which member a request goes to, and the request as that member must see it (its own names).

Prompts by their namespaced name; resources by URI, through the index the members' lists built (the first member
listing a URI wins), then by the members' URI templates; completions by the prompt or resource they complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shadowproxy.core.errors import INVALID_PARAMS, METHOD_NOT_FOUND, JsonRpcError
from shadowproxy.core.jsonrpc import Message
from shadowproxy.gateway.seams import Session

RESOURCE_NOT_FOUND = -32002
BY_URI = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})


async def route(channel: Session, message: Message, headers: Mapping[str, str]) -> tuple[str, Message]:
    method = message.method or ""
    params = message.params or {}
    if method == "prompts/get":
        member, name = prompt_target(channel, params.get("name"))
        return member, message.evolve(params={**params, "name": name})
    if method in BY_URI:
        return await resource_owner(channel, params.get("uri"), message, headers), message
    if method == "completion/complete":
        ref = params.get("ref") if isinstance(params.get("ref"), dict) else {}
        if ref.get("type") == "ref/prompt":
            member, name = prompt_target(channel, ref.get("name"))
            return member, message.evolve(params={**params, "ref": {**ref, "name": name}})
        return await resource_owner(channel, ref.get("uri"), message, headers), message
    raise JsonRpcError(METHOD_NOT_FOUND, f"virtual server {channel.gateway.name!r} does not route {method}")


def prompt_target(channel: Session, name: Any) -> tuple[str, str]:
    target = channel.gateway.names.split(name) if isinstance(name, str) else None
    if target is None:
        raise JsonRpcError(INVALID_PARAMS, f"unknown prompt {name!r}")
    return target


async def resource_owner(channel: Session, uri: Any, message: Message, headers: Mapping[str, str]) -> str:
    if not isinstance(uri, str):
        raise JsonRpcError(INVALID_PARAMS, "params.uri must be a string")
    owner = channel.resources.get(uri)
    if owner is not None:
        return owner
    ask = message.evolve(method="resources/list", params=_meta_only(message))
    for link in channel.links.values():
        await channel.member_list(link, ask, headers)
    owner = channel.resources.get(uri)
    if owner is not None:
        return owner
    templates = message.evolve(method="resources/templates/list", params=_meta_only(message))
    for link in channel.links.values():
        for template in await channel.member_list(link, templates, headers):
            pattern = template.get("uriTemplate") if isinstance(template, dict) else None
            if isinstance(pattern, str) and uri.startswith(pattern.split("{", 1)[0]) and "{" in pattern:
                return link.name
    raise JsonRpcError(RESOURCE_NOT_FOUND, f"Resource not found: {uri}", {"uri": uri})


def _meta_only(message: Message) -> dict[str, Any] | None:
    meta = (message.params or {}).get("_meta")
    return {"_meta": meta} if isinstance(meta, dict) else None
