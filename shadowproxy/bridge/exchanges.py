"""One 2026-07-28 request carried on a pooled handshake session, as the front reads it.

The request goes up under an id of the bridge's own (several clients of one principal share a session), and
its progress token is renumbered likewise. What the server sends comes back under the client's id and token;
a server-to-client request (sampling, elicitation, roots) ends the exchange with an ``InputRequiredResult``,
while the upstream's request stays open, *parked* under the ``requestState`` the client echoes on its retry
(:class:`Parked`). The retry's answers go to the server, and the parked request's exchange carries on under
the retry's id. A parked request nobody comes back for is cancelled upstream after ``PARK_TIMEOUT``. A list
change or resource update the server sends during the request goes to the principal's listen streams instead.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from shadowproxy.bridge.pool import HandshakePool, PooledSession
from shadowproxy.bridge.shapes import INPUT_REQUIRED, input_required, log_floor, logged_at, modern_result
from shadowproxy.core.errors import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    JsonRpcError,
    UpstreamError,
    UpstreamSessionLost,
)
from shadowproxy.core.jsonrpc import Message, error_response, notification, result_response
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.attribution import RESOURCE_UPDATED, SHARED_STATE
from shadowproxy.upstreams.base import Exchange

log = logging.getLogger(__name__)

PARK_TIMEOUT = 120.0
MAX_PARKED = 1024


class BridgedExchange:
    """The front's view of one upstream request: the client's ids, 2026-07-28 results."""

    status: int | None = None
    streaming = False
    controls: tuple[bytes, ...] = ()
    event_id = None

    def __init__(
        self,
        bridge: Parking,
        pooled: PooledSession,
        inner: Exchange,
        client_request: Message,
        upstream_id: int,
        principal: str | None,
    ) -> None:
        self.bridge = bridge
        self.pooled = pooled
        self.inner = inner
        self.client_request = client_request
        self.upstream_id = upstream_id
        self.principal = principal
        self.token = _progress_token(client_request)
        # A 2026-07-28 client gets log messages only at the level its request names, if it names one.
        self.log_floor = log_floor(client_request)
        self.over = False
        pooled.busy += 1

    async def next(self) -> Message:
        if self.over:
            raise UpstreamError("the exchange is over")
        try:
            message = await self.inner.next()
        except UpstreamSessionLost as exc:
            # Not the client's session that is lost but the bridge's: the next request opens another.
            self._end()
            await self.bridge.pool.forget(self.pooled)
            raise UpstreamError(exc.message) from None
        request = self.client_request
        if message.is_reply:
            self._end()
            # The request is over: its exchange is let go (over HTTP, the response and its pooled connection).
            await self.inner.close()
            if message.result is not None:
                return result_response(request.id, modern_result(request.method, message.result))  # type: ignore[arg-type]
            return message.evolve(id=request.id)
        if message.is_request and (request.method not in INPUT_REQUIRED or message.method == "ping"):
            # Only these three requests can answer with an InputRequiredResult; ping needs no client.
            await self._answer_here(message)
            return await self.next()
        if message.is_request:
            state = self.bridge.park(self, message)
            self.over = True
            return result_response(request.id, input_required("input-1", message, state))  # type: ignore[arg-type]
        if message.method in SHARED_STATE or message.method == RESOURCE_UPDATED:
            # The server's own state, not this request's: a 2026-07-28 client hears of it only on its listen streams.
            # A handshake server over stdio has no other stream, so what it says during a call lands here.
            self.bridge.pool.heard(self.principal, message)
            return await self.next()
        if message.method == "notifications/message" and (
            self.log_floor is None or logged_at(message) < self.log_floor
        ):
            return await self.next()
        if message.method == "notifications/progress" and self.token is not None:
            params = message.params or {}
            message = message.evolve(params={**params, "progressToken": self.token})
        return message

    async def _answer_here(self, server_request: Message) -> None:
        if server_request.method == "ping":
            reply = result_response(server_request.id, {})  # type: ignore[arg-type]
        else:
            text = (
                f"a 2026-07-28 client cannot be asked {server_request.method!r} during {self.client_request.method!r}"
            )
            reply = error_response(server_request.id, JsonRpcError(METHOD_NOT_FOUND, text))
        assert self.pooled.channel is not None
        await self.pooled.channel.send(reply, self.pooled.headers)

    def _end(self) -> None:
        if not self.over:
            self.over = True
            self.pooled.busy -= 1
            self.pooled.touch()

    async def close(self, *, cancel: bool = False) -> None:
        if self.over:
            return
        self._end()
        await self.inner.close()
        if cancel:
            log.info("bridge: the client left; cancelling %r upstream", self.client_request.method)
            await cancel_upstream(self.pooled, self.upstream_id, "the client closed its stream")

    def resumed(self, retry: Message) -> BridgedExchange:
        """This upstream request, now read for the client's retry (its id and progress token)."""
        self.pooled.busy -= 1
        return BridgedExchange(self.bridge, self.pooled, self.inner, retry, self.upstream_id, self.principal)


async def cancel_upstream(pooled: PooledSession, upstream_id: int, reason: str) -> None:
    if pooled.channel is None:
        return
    try:
        await pooled.channel.send(
            notification("notifications/cancelled", {"requestId": upstream_id, "reason": reason}), pooled.headers
        )
    except UpstreamError:
        pass


class Parked:
    """An upstream request waiting for a client's answers to a server request."""

    __slots__ = ("exchange", "server_request", "timer")

    def __init__(self, exchange: BridgedExchange, server_request: Message, timer: asyncio.TimerHandle) -> None:
        self.exchange = exchange
        self.server_request = server_request
        self.timer = timer


class Parking:
    """The parked requests of one upstream, by ``requestState`` (unguessable, and bound to its principal)."""

    def __init__(self, pool: HandshakePool) -> None:
        self.pool = pool
        self.parked: dict[str, Parked] = {}

    def park(self, exchange: BridgedExchange, server_request: Message) -> str:
        if len(self.parked) >= MAX_PARKED:
            self._expire(next(iter(self.parked)))
        state = secrets.token_urlsafe(24)
        timer = asyncio.get_running_loop().call_later(PARK_TIMEOUT, self._expire, state)
        self.parked[state] = Parked(exchange, server_request, timer)
        return state

    def _expire(self, state: str) -> None:
        parked = self.parked.pop(state, None)
        if parked is not None:
            parked.timer.cancel()
            exchange = parked.exchange
            exchange.over = False
            spawn(exchange.close(cancel=True), name="bridge-expire")

    async def resume(
        self, retry: Message, state: str, responses: dict[str, Any] | None, principal: str | None
    ) -> Exchange:
        """The client's retry: its answer goes to the server, and the parked request carries on for it."""
        parked = self.parked.get(state)
        if parked is None or parked.exchange.principal != principal:
            raise JsonRpcError(INVALID_PARAMS, "unknown or expired requestState; send the request again without it")
        if parked.exchange.client_request.method != retry.method:
            raise JsonRpcError(INVALID_PARAMS, "requestState belongs to another request")
        del self.parked[state]
        parked.timer.cancel()
        exchange = parked.exchange
        answer = (responses or {}).get("input-1")
        server_id = parked.server_request.id
        if isinstance(answer, dict):
            reply = result_response(server_id, {k: v for k, v in answer.items() if k != "resultType"})  # type: ignore[arg-type]
        else:
            error = JsonRpcError(INVALID_PARAMS, "the client gave no answer to this request")
            reply = error_response(server_id, error)
        assert exchange.pooled.channel is not None
        await exchange.pooled.channel.send(reply, exchange.pooled.headers)
        return exchange.resumed(retry)

    def close(self) -> None:
        for state in list(self.parked):
            self._expire(state)


def _progress_token(message: Message) -> object:
    params = message.params
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get("progressToken") if isinstance(meta, dict) else None
