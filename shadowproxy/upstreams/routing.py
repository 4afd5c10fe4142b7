"""Routing for upstreams whose every message arrives on one stream (legacy SSE, WebSocket).

The stream's reader hands each server message to :meth:`Router.route`, which
gives a reply to the request waiting for its id, progress to the request that
owns its token, and anything else to the latest request in flight (a sampling
request during a tool call) or, with none in flight, to the session's
unsolicited handler. Like a stdio child's, minus the id rewriting: one
connection serves one session.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from shadowproxy.core.errors import INVALID_REQUEST, JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import Message, decode, notification
from shadowproxy.upstreams.base import Exchange, Pending, UnsolicitedHandler

log = logging.getLogger(__name__)

Sender = Callable[[Message], Awaitable[None]]


class RoutedRequest(Pending):
    """A request in flight on a routed stream; also the :class:`Exchange` its requester reads."""

    __slots__ = ("router",)
    status = None
    streaming = False
    controls: tuple[bytes, ...] = ()
    event_id = None

    def __init__(self, router: Router, request: Message) -> None:
        super().__init__(request, request.id)
        self.router = router

    async def close(self, *, cancel: bool = False) -> None:
        if self.router.forget(self) and cancel:
            await self.router.cancel(self.key)


class Router:
    """The requests in flight on one upstream stream."""

    def __init__(self, name: str, on_unsolicited: UnsolicitedHandler, send: Sender) -> None:
        self.name = name
        self.on_unsolicited = on_unsolicited
        self.send = send
        self.pending: dict[object, RoutedRequest] = {}
        self.progress: dict[object, RoutedRequest] = {}
        self.ended: UpstreamError | None = None

    def register(self, message: Message) -> RoutedRequest:
        if self.ended is not None:
            raise self.ended
        if message.id in self.pending:
            raise JsonRpcError(INVALID_REQUEST, f"request id {message.id!r} is already in flight in this session")
        waiting = RoutedRequest(self, message)
        params = message.params
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if token is not None:
            waiting.token = token
            self.progress[token] = waiting
        self.pending[message.id] = waiting
        return waiting

    def forget(self, waiting: RoutedRequest) -> bool:
        """Stop routing to ``waiting``; true when it was still waiting."""
        if self.pending.get(waiting.key) is not waiting:
            return False
        del self.pending[waiting.key]
        if waiting.token is not None:
            self.progress.pop(waiting.token, None)
        return True

    async def cancel(self, request_id: object) -> None:
        if self.ended is None:
            try:
                await self.send(notification("notifications/cancelled", {"requestId": request_id}))
            except UpstreamError:
                pass

    def feed(self, data: bytes) -> None:
        """One frame or event from the server: a message or a batch."""
        try:
            decoded = decode(data)
        except JsonRpcError as exc:
            log.warning("upstream %s sent something that is not JSON-RPC (%s): %.200r", self.name, exc.message, data)
            return
        for message in decoded if isinstance(decoded, list) else (decoded,):
            self.route(message)

    def route(self, message: Message) -> None:
        if message.is_reply:
            waiting = self.pending.get(message.id)
            if waiting is None:
                log.debug("upstream %s answered id %r, which no one waits for", self.name, message.id)
                return
            self.forget(waiting)
            waiting.put(message)
            return
        if message.method == "notifications/progress":
            params = message.params or {}
            owner = self.progress.get(params.get("progressToken"))
            if owner is not None:
                owner.put(message)
                return
        if self.pending:
            next(reversed(self.pending.values())).put(message)
            return
        self.on_unsolicited(message)

    def end(self, error: UpstreamError) -> None:
        """The stream is over: every request in flight fails with ``error``, and so will new ones."""
        if self.ended is None:
            self.ended = error
        waiting = list(self.pending.values())
        self.pending.clear()
        self.progress.clear()
        for request in waiting:
            request.fail(error)


async def replay_handshake(request: Callable[[Message], Awaitable[Exchange]], send: Sender, init: str) -> None:
    """Carry a session on over a new connection: send the client's ``initialize`` and ``initialized`` again."""
    initialize = decode(init.encode())
    assert isinstance(initialize, Message)
    exchange = await request(initialize)
    try:
        reply = await exchange.next()
        while not (reply.is_reply and reply.id == initialize.id):
            reply = await exchange.next()
    finally:
        await exchange.close()
    if reply.error is not None:
        raise UpstreamError(f"the replayed initialize failed: {reply.error.get('message')}")
    await send(notification("notifications/initialized"))


class RoutedChannel:
    """What a channel on one stream does alike whatever the stream: subclasses give ``router`` and ``transmit``.

    Every server message arrives on the stream, so there is no separate stream to ``listen`` to, and a
    session lives and dies with its stream: a new one is carried on by replaying the client's handshake.
    """

    upstream_session_id: str | None = None
    router: Router

    async def transmit(self, message: Message) -> None:
        raise NotImplementedError

    async def request(self, message: Message, headers: Mapping[str, str]) -> RoutedRequest:
        waiting = self.router.register(message)
        try:
            await self.transmit(message)
        except BaseException:
            self.router.forget(waiting)
            raise
        return waiting

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        await self.transmit(message)

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        if init_request is not None:
            await replay_handshake(lambda m: self.request(m, {}), self.transmit, init_request)

    async def listen(self, headers: Mapping[str, str]) -> None:
        return None

    async def close(self) -> None:
        raise NotImplementedError

    async def detach(self) -> None:
        await self.close()
