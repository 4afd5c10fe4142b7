"""The channel a logical session of 2026-07-28 requests gets when its upstream speaks only the handshake era.

Each request is carried on the pooled handshake session of its principal and capabilities
(:class:`~shadowproxy.pool.HandshakePool`); ``server/discover`` is answered from that session's
``initialize`` result; a retry that echoes a ``requestState`` resumes its parked request
(:class:`~shadowproxy.bridge.exchanges.Parking`); ``subscriptions/listen`` gets a listening session of its
own (:mod:`~shadowproxy.bridge.listen`). A session the upstream forgot is opened again, once per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shadowproxy.bridge.exchanges import BridgedExchange, Parking
from shadowproxy.bridge.listen import open_listen
from shadowproxy.bridge.pool import HandshakePool, PooledSession
from shadowproxy.bridge.shapes import (
    INPUT_REQUIRED,
    REMOVED,
    client_capabilities,
    discover_result,
    retry_fields,
    strip_envelope,
)
from shadowproxy.core.errors import METHOD_NOT_FOUND, JsonRpcError, UpstreamSessionLost
from shadowproxy.core.jsonrpc import Message, error_response, result_response
from shadowproxy.upstreams.base import Answered, Exchange


class BridgedChannel:
    """A logical session's path to a handshake-only upstream, through the bridge's sessions."""

    upstream_session_id = None
    bridged = True

    def __init__(
        self, pool: HandshakePool, parking: Parking, count: Callable[[str | None], None], principal: str | None
    ) -> None:
        self.pool = pool
        self.parking = parking
        self.count = count
        self.principal = principal

    async def request(self, message: Message, headers: Mapping[str, str]) -> Exchange:
        pool = self.pool
        self.count(message.method)
        if message.method in REMOVED:
            missing = JsonRpcError(METHOD_NOT_FOUND, f"{message.method} is not a 2026-07-28 method")
            return Answered(error_response(message.id, missing))  # type: ignore[arg-type]
        responses, state = retry_fields(message)
        if state is not None:
            return await self.parking.resume(message, state, responses, self.principal)
        capabilities = client_capabilities(message)
        if message.method == "subscriptions/listen":
            return await open_listen(pool, self.principal, message, capabilities)
        pooled = await pool.session(self.principal, capabilities)
        if message.method == "server/discover":
            return Answered(result_response(message.id, discover_result(pooled.initialized)))  # type: ignore[arg-type]
        try:
            return await self._carry(pooled, message)
        except UpstreamSessionLost:
            await pool.forget(pooled)
            return await self._carry(await pool.session(self.principal, capabilities), message)

    async def _carry(self, pooled: PooledSession, message: Message) -> BridgedExchange:
        upstream_id = next(pooled.ids)
        sent = strip_envelope(message, upstream_id)
        params = sent.params
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(meta, dict) and "progressToken" in meta:
            sent = sent.evolve(params={**params, "_meta": {**meta, "progressToken": upstream_id}})  # type: ignore[dict-item]
        assert pooled.channel is not None
        inner = await pooled.channel.request(sent, pooled.headers)
        if message.method in INPUT_REQUIRED:
            inner = pooled.claim(upstream_id, inner)
        return BridgedExchange(self.parking, pooled, inner, message, upstream_id, self.principal)

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        """A 2026-07-28 client sends no notification a handshake server needs: cancelling is closing the stream,
        which :meth:`BridgedExchange.close` turns into ``notifications/cancelled``."""

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        """Nothing to resume: the pooled sessions belong to the bridge."""

    async def listen(self, headers: Mapping[str, str]) -> None:
        return None

    async def close(self) -> None:
        """The pooled sessions outlive any one logical session; the pool closes them when idle."""

    async def detach(self) -> None:
        """As :meth:`close`."""
