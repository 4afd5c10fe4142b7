"""The first handshake-era session of an upstream whose era is not known yet: its ``initialize`` decides.

The client's ``initialize`` goes up as it came. A server that answers it is met directly, by this session and
every later one (they get the upstream's own channel, no wrapper); one that refuses it as a 2026-07-28-only
server does makes this session and every later one a :class:`~shadowproxy.bridge.legacy_client.LegacyChannel`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shadowproxy.bridge.legacy_client import LegacyChannel
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.upstreams.base import Channel, Exchange, UnsolicitedHandler, Upstream

REFUSALS = frozenset({-32601, -32022, -32600})


def refused_initialize(reply: Message) -> bool:
    """Whether ``reply`` to ``initialize`` says the server does not speak the handshake era."""
    return reply.kind is Kind.ERROR and (reply.error or {}).get("code") in REFUSALS


def _ignore(message: Message) -> None:
    """The stateless channel's unsolicited messages: a 2026-07-28 server sends none outside a listen stream."""


class DecidingChannel:
    """A session's channel until its ``initialize`` is answered; then the upstream's own or a bridged one."""

    def __init__(
        self,
        upstream: Upstream,
        direct: Channel,
        on_unsolicited: UnsolicitedHandler,
        decided: Callable[[bool], None],
        count: Callable[[str | None], None],
    ) -> None:
        self.upstream = upstream
        self.count = count
        self.current: Channel = direct
        self.on_unsolicited = on_unsolicited
        self.decided = decided

    @property
    def upstream_session_id(self) -> str | None:
        return self.current.upstream_session_id

    @property
    def bridged(self) -> bool:
        return isinstance(self.current, LegacyChannel)

    async def request(self, message: Message, headers: Mapping[str, str]) -> Exchange:
        exchange = await self.current.request(message, headers)
        if message.method != "initialize" or isinstance(self.current, LegacyChannel):
            return exchange
        return DecidingExchange(self, message, exchange)

    async def bridge(self, initialize: Message, refusal: Message) -> Message:
        """The server refused ``initialize``: bridged if it answers ``server/discover`` as a 2026-07-28 server
        does (and the client gets the answer made from it), else the client gets the refusal."""
        legacy = LegacyChannel(await self.upstream.open(_ignore, shared=True), self.on_unsolicited, self.count)
        answer = await legacy.answer_initialize(initialize)
        if answer.kind is not Kind.RESPONSE:
            await legacy.channel.close()
            return refusal
        self.decided(True)
        await self.current.close()
        self.current = legacy
        return answer

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        await self.current.send(message, headers)

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        await self.current.resume(upstream_session_id, init_request)

    async def listen(self, headers: Mapping[str, str]) -> Exchange | None:
        return await self.current.listen(headers)

    async def close(self) -> None:
        await self.current.close()

    async def detach(self) -> None:
        await self.current.detach()


class DecidingExchange:
    """The answer to the first ``initialize``, read as it comes (the front streams and times it as any other);
    its reply decides."""

    def __init__(self, owner: DecidingChannel, initialize: Message, inner: Exchange) -> None:
        self.owner = owner
        self.initialize = initialize
        self.inner = inner

    @property
    def status(self) -> int | None:
        return self.inner.status

    @property
    def streaming(self) -> bool:
        return self.inner.streaming

    @property
    def controls(self) -> list[bytes] | tuple[bytes, ...]:
        return self.inner.controls

    @property
    def event_id(self) -> str | None:
        return self.inner.event_id

    async def next(self) -> Message:
        message = await self.inner.next()
        if not message.is_reply:
            return message
        if not refused_initialize(message):
            self.owner.decided(False)
            return message
        return await self.owner.bridge(self.initialize, message)

    async def close(self, *, cancel: bool = False) -> None:
        await self.inner.close(cancel=cancel)
