"""``subscriptions/listen`` for a handshake-era server: the server's unsolicited notifications as the listen
stream's events, and for a stream that follows resources a session of its own with ``resources/subscribe`` for each.

The stream hears what the server sends unasked on any pooled session of the same principal (a handshake server
often tells only the session that changed something); a stream that follows no resource needs nothing more, and
opens no session. A resource-following stream's session is not pooled.
The stream starts with ``notifications/subscriptions/acknowledged`` naming what is honoured (a resource the
server would not subscribe to is left out), carries only the notifications the client opted in to, each
stamped with the listen request's id, and ends the upstream session when the client closes it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shadowproxy.bridge.pool import OPEN_TIMEOUT, HandshakePool, PooledSession, open_session
from shadowproxy.bridge.session_stream import pump
from shadowproxy.bridge.shapes import SUBSCRIPTION_ID
from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import Kind, Message, error_response, notification
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.base import Exchange, final_reply

LIST_CHANGED = {
    "toolsListChanged": "notifications/tools/list_changed",
    "promptsListChanged": "notifications/prompts/list_changed",
    "resourcesListChanged": "notifications/resources/list_changed",
}
MAX_QUEUED = 1024


class ListenExchange:
    """One listen stream; it has no reply until the upstream session ends."""

    status: int | None = None
    streaming = True
    controls: tuple[bytes, ...] = ()
    event_id = None

    def __init__(
        self,
        pool: HandshakePool,
        principal: str | None,
        pooled: PooledSession | None,
        request: Message,
        honored: dict[str, Any],
    ) -> None:
        self.pool = pool
        self.principal = principal
        self.pooled = pooled
        self.request = request
        self.wanted = {method for flag, method in LIST_CHANGED.items() if honored.get(flag) is True}
        self.uris = frozenset(honored.get("resourceSubscriptions") or ())
        self.inbox: Inbox[Message] = Inbox(MAX_QUEUED)
        # The listening session's GET stream (an HTTP upstream's), read into the inbox beside what the principal's
        # other sessions hear: one queue, so neither waits behind the other.
        self.source: asyncio.Task[None] | None = None
        pool.listeners.setdefault(principal, []).append(self._heard)
        ack = notification("notifications/subscriptions/acknowledged", {"notifications": honored})
        self.inbox.put(self._stamp(ack))

    def _stamp(self, message: Message) -> Message:
        params = message.params or {}
        meta = {**(params.get("_meta") or {}), SUBSCRIPTION_ID: self.request.id}
        return message.evolve(params={**params, "_meta": meta})

    def _wants(self, message: Message) -> bool:
        if message.method in self.wanted:
            return True
        if message.method == "notifications/resources/updated":
            return (message.params or {}).get("uri") in self.uris
        return False

    def _heard(self, message: Message) -> None:
        if self._wants(message):
            self.inbox.put(self._stamp(message))

    def follow(self, stream: Exchange | None) -> None:
        if stream is not None:
            self.source = spawn(self._follow(stream), name="bridge-listen-stream")

    async def _follow(self, stream: Exchange) -> None:
        await pump(stream, self._heard)
        # The listening session's stream ended (the server forgot the session): so does the client's listen.
        ended = UpstreamError("the upstream session of this listen stream ended")
        self.inbox.put(error_response(self.request.id, ended))  # type: ignore[arg-type]

    async def next(self) -> Message:
        return await self.inbox.next()

    async def close(self, *, cancel: bool = False) -> None:
        listeners = self.pool.listeners.get(self.principal, [])
        if self._heard in listeners:
            listeners.remove(self._heard)
            if not listeners:
                del self.pool.listeners[self.principal]
        if self.source is not None:
            self.source.cancel()
        if self.pooled is not None and self.pooled.channel is not None:
            await self.pooled.channel.close()


async def _subscribed(pooled: PooledSession, uri: str, request_id: int) -> bool:
    assert pooled.channel is not None
    body = {"jsonrpc": "2.0", "id": request_id, "method": "resources/subscribe", "params": {"uri": uri}}
    exchange = await pooled.channel.request(Message(Kind.REQUEST, body), pooled.headers)
    try:
        async with asyncio.timeout(OPEN_TIMEOUT):
            reply = await final_reply(exchange)
    except TimeoutError:
        return False
    return reply.kind is Kind.RESPONSE


async def open_listen(
    pool: HandshakePool, principal: str | None, request: Message, capabilities: dict[str, Any]
) -> ListenExchange:
    params = request.params or {}
    asked = params.get("notifications")
    asked = asked if isinstance(asked, dict) else {}
    honored: dict[str, Any] = {flag: True for flag in LIST_CHANGED if asked.get(flag) is True}
    uris = [uri for uri in asked.get("resourceSubscriptions") or () if isinstance(uri, str)]
    if not uris:
        # List changes are heard on the principal's pooled sessions, where the calls that make them run: no session
        # of its own to open (over stdio, a process to start) before the stream is acknowledged.
        return ListenExchange(pool, principal, None, request, honored)
    # Its GET stream is the listen stream's source, read below.
    pooled = await open_session(pool.upstream, (principal, b"listen"), capabilities, pool.heard, listen=False)
    try:
        kept = [uri for uri in uris if await _subscribed(pooled, uri, next(pooled.ids))]
        if kept:
            honored["resourceSubscriptions"] = kept
        exchange = ListenExchange(pool, principal, pooled, request, honored)
        assert pooled.channel is not None
        exchange.follow(await pooled.channel.listen(pooled.headers))
    except UpstreamError:
        assert pooled.channel is not None
        await pooled.channel.close()
        raise
    return exchange
