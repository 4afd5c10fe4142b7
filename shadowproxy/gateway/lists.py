"""The members' lists merged into one, and the cursor that pages across them.

A merged list is the members' complete lists one after the other, in the order the config names them; the
gateway's cursor is an offset into it, so a page may end inside one member and the next begin there.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from shadowproxy.core.errors import INVALID_PARAMS, JsonRpcError
from shadowproxy.core.jsonrpc import Message
from shadowproxy.gateway.member import ask, gateway_id
from shadowproxy.upstreams.base import Channel

ITEMS = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}
CHANGED = {
    "notifications/tools/list_changed": frozenset({"tools/list"}),
    "notifications/prompts/list_changed": frozenset({"prompts/list"}),
    "notifications/resources/list_changed": frozenset({"resources/list", "resources/templates/list"}),
}
MAX_PAGES = 100
"""Pages read of one member's list: bounds what a member that never stops paging costs."""
_PREFIX = b"shadowproxy-gateway:"


async def fetch(
    channel: Channel, request: Message, headers: Mapping[str, str], other: Callable[[Message], None]
) -> tuple[list[Any], dict[str, Any]]:
    """A member's complete list for ``request``'s method, and its first page's result (for cache hints)."""
    key = ITEMS[request.method or ""]
    params = {k: v for k, v in (request.params or {}).items() if k != "cursor"}
    items: list[Any] = []
    first: dict[str, Any] | None = None
    for _ in range(MAX_PAGES):
        reply = await ask(channel, request.evolve(id=gateway_id(), params=params or None), headers, other)
        if reply.error is not None:
            raise JsonRpcError(int(reply.error.get("code", -32603)), str(reply.error.get("message", "")))
        result = reply.result if isinstance(reply.result, dict) else {}
        first = first if first is not None else result
        page = result.get(key)
        if isinstance(page, list):
            items.extend(page)
        cursor = result.get("nextCursor")
        if not isinstance(cursor, str) or not cursor:
            break
        params = {**params, "cursor": cursor}
    return items, first or {}


def page(items: list[Any], request: Message, size: int) -> tuple[list[Any], str | None]:
    """The page of ``items`` the request's cursor asks for, and the cursor of the next."""
    cursor = (request.params or {}).get("cursor")
    start = 0 if cursor is None else offset_of(cursor)
    end = start + size
    return items[start:end], encode(end) if end < len(items) else None


def encode(offset: int) -> str:
    return base64.urlsafe_b64encode(_PREFIX + str(offset).encode()).decode()


def offset_of(cursor: Any) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()) if isinstance(cursor, str) else b""
    except ValueError:
        raw = b""
    digits = raw[len(_PREFIX) :] if raw.startswith(_PREFIX) else b""
    if not digits.isdigit():
        raise JsonRpcError(INVALID_PARAMS, "invalid cursor: not one this server gave")
    return int(digits)
