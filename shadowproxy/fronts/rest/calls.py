"""One MCP request made for a REST caller: judged by the mount's chain, sent on the principal's stateless
channel (a 2026-07-28 request), its reply judged too.

A REST caller is a logical session of its principal, as a 2026-07-28 client is (:meth:`Mount.logical_session`),
so rules, limits, audit and tap see it like any client: transport ``rest``, client ``shadowproxy-rest``.
"""

from __future__ import annotations

import itertools
from typing import Any

from shadowproxy.core.chain import C2S, S2C
from shadowproxy.core.errors import POLICY_BLOCKED, JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import Message, classify
from shadowproxy.core.protocol import META_CLIENT_INFO, META_PROTOCOL_VERSION, MODERN_VERSION
from shadowproxy.fronts.client_headers import client_headers
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions.admission import Guard

TRANSPORT = "rest"
CLIENT = {"name": "shadowproxy-rest", "version": "1"}
CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
_ids = itertools.count(1)


class Blocked(JsonRpcError):
    """The chain stopped the request or its reply."""


async def ask(mount: Mount, guard: Guard, principal: str | None, method: str, params: dict[str, Any]) -> Any:
    """The result of ``method``; :class:`Blocked` when policy stopped it, :class:`JsonRpcError` for an error."""
    meta = {META_PROTOCOL_VERSION: MODERN_VERSION, META_CLIENT_INFO: CLIENT, CLIENT_CAPABILITIES: {}}
    data = {"jsonrpc": "2.0", "id": f"rest-{next(_ids)}", "method": method, "params": {**params, "_meta": meta}}
    message = classify(data, None)
    session = mount.logical_session(message, principal, guard)
    verdict = await mount.judge(message, C2S, session, TRANSPORT)
    if not verdict.is_forward:
        if verdict.error is not None:
            raise Blocked(verdict.error.code, verdict.error.message, verdict.error.data)
        return verdict.result
    sent = verdict.message or message
    channel = await mount.stateless_channel(session)
    exchange = await channel.request(sent, client_headers(sent, None))
    try:
        while True:
            incoming = await exchange.next()
            if incoming.is_reply:
                break
    finally:
        await exchange.close()
    mount.sessions.touch(session, errors=incoming.error is not None)
    reply = await mount.judge(incoming, S2C, session, TRANSPORT, sent)
    if not reply.is_forward:
        error = reply.error or JsonRpcError(POLICY_BLOCKED, "blocked")
        raise Blocked(error.code, error.message, error.data)
    answered: Message = reply.message or incoming
    if answered.error is not None:
        error = answered.error
        raise JsonRpcError(int(error.get("code", -32603)), str(error.get("message", "")), error.get("data"))
    return answered.result


async def every(mount: Mount, guard: Guard, principal: str | None, method: str, key: str) -> list[Any]:
    """Every item of a list, following its cursors (at most 100 pages)."""
    items: list[Any] = []
    params: dict[str, Any] = {}
    for _ in range(100):
        result = await ask(mount, guard, principal, method, params)
        page = result.get(key) if isinstance(result, dict) else None
        items += page if isinstance(page, list) else []
        cursor = result.get("nextCursor") if isinstance(result, dict) else None
        if not isinstance(cursor, str) or not cursor:
            break
        params = {"cursor": cursor}
    return items


__all__ = ["Blocked", "UpstreamError", "ask", "every"]
