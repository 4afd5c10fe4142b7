"""A session's channel to a stdio child: its requests, its notifications, and the session's end with the child.

A child serves one session (the default) or several (``share: true``, and the one process of the
2026-07-28 requests); serving several, the channel renumbers request ids and progress tokens so that ids
from different clients never collide, and notes which resources and server requests are its session's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from shadowproxy.core.errors import INVALID_REQUEST, JsonRpcError, UpstreamSessionLost
from shadowproxy.core.jsonrpc import Message
from shadowproxy.upstreams.base import UnsolicitedHandler
from shadowproxy.upstreams.child import ChildProcess, ChildRequest
from shadowproxy.upstreams.routing import replay_handshake

log = logging.getLogger("shadowproxy.upstreams.stdio")

SUBSCRIBING = frozenset({"resources/subscribe", "resources/unsubscribe"})


class ChildChannel:
    """A session's channel to a child; ``rewrite`` is on when the child serves several sessions."""

    upstream_session_id = None

    def __init__(
        self,
        child: ChildProcess,
        *,
        rewrite: bool,
        owned: bool,
        handler: UnsolicitedHandler,
        revive: Callable[[], Awaitable[ChildProcess]] | None = None,
    ) -> None:
        self.child = child
        self.rewrite = rewrite
        self.owned = owned
        self.handler = handler
        # Where a channel that is not tied to one process (the stateless one) gets the current child.
        self.revive = revive
        self.keys: dict[object, object] = {}
        child.shared |= rewrite

    async def request(self, message: Message, headers: Mapping[str, str]) -> ChildRequest:
        child = self.child
        if not child.alive:
            child = await self._revived()
        params = message.params
        if self.rewrite and message.method in SUBSCRIBING:
            self._subscribe(child, message)
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if self.rewrite:
            key: object = next(child.ids)
            pending = ChildRequest(child, message, key, self)
            if token is not None:
                pending.original_token = token
                token = key
                message = message.evolve(params={**params, "_meta": {**meta, "progressToken": key}})  # type: ignore[dict-item]
            if len(self.keys) > 256:
                self.keys = {orig: k for orig, k in self.keys.items() if k in child.pending}
            self.keys[message.id] = key
            message = message.evolve(id=key)
        else:
            key = message.id
            if key in child.pending:
                raise JsonRpcError(INVALID_REQUEST, f"request id {key!r} is already in flight in this session")
            pending = ChildRequest(child, message, key, self)
            pending.original_token = token
        if token is not None:
            pending.token = token
            child.progress[token] = pending
        child.pending[key] = pending
        child.write(message.to_bytes())
        if child.paused is not None:  # WriteFlow.drain, tested here: the pipe almost always takes it at once
            await child.paused
        return pending

    async def _revived(self) -> ChildProcess:
        if self.revive is None:
            # The session lived in that process: it is gone, and the client starts a new one (HTTP 404).
            raise UpstreamSessionLost(
                f"upstream {self.child.name!r} exited (code {self.child.returncode}); this session ended with it"
            )
        self.child = await self.revive()
        self.child.shared = True
        self.keys.clear()
        return self.child

    def _subscribe(self, child: ChildProcess, message: Message) -> None:
        """Note which resources this session follows, so that only it gets their updates."""
        uri = (message.params or {}).get("uri")
        if not isinstance(uri, str):
            return
        if message.method == "resources/subscribe":
            child.subscribers.setdefault(uri, set()).add(self.handler)
        else:
            subscribed = child.subscribers.get(uri)
            if subscribed is not None:
                subscribed.discard(self.handler)
                if not subscribed:
                    del child.subscribers[uri]

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        if self.rewrite and message.is_reply:
            asked = self.child.asked.pop(message.id, None)
            if asked is not self and asked is not self.handler:
                # Not this session's server request: another session's (or none) must not be answered by it.
                self.child.asked[message.id] = asked
                self.child.dropped(message)
                return
        if self.rewrite and message.method == "notifications/cancelled":
            params = message.params or {}
            key = self.keys.get(params.get("requestId"))
            if key is None:
                return
            message = message.evolve(params={**params, "requestId": key})
        self.child.write(message.to_bytes())
        if self.child.paused is not None:
            await self.child.paused

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        """A new child for an old session: replay the client's ``initialize`` and ``initialized``, as it sent them."""
        if init_request is not None:
            await replay_handshake(lambda sent: self.request(sent, {}), lambda sent: self.send(sent, {}), init_request)

    async def listen(self, headers: Mapping[str, str]) -> None:
        """A child's unsolicited messages reach the session through ``handler``; there is no stream to open."""
        return None

    async def close(self) -> None:
        if self.owned:
            await self.child.terminate()
            return
        if self.handler in self.child.unsolicited:
            self.child.unsolicited.remove(self.handler)
        for uri, subscribed in list(self.child.subscribers.items()):
            subscribed.discard(self.handler)
            if not subscribed:
                del self.child.subscribers[uri]

    async def detach(self) -> None:
        """A child cannot outlive the proxy; the session's next process replays the handshake to a new one."""
        await self.close()
