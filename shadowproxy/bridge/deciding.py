"""The first handshake-era session of an upstream whose era is not known yet: its ``initialize`` decides.

The client's ``initialize`` goes up as it came. A server that answers it is met directly, by this session and
every later one (they get the upstream's own channel, no wrapper); one that refuses it as a 2026-07-28-only
server does makes this session and every later one a :class:`~shadowproxy.bridge.legacy_client.LegacyChannel`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shadowproxy.bridge.exchanges import Answered
from shadowproxy.bridge.legacy_client import DISCOVER_TIMEOUT, LegacyChannel, final_reply
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
        if message.method != "initialize" or isinstance(self.current, LegacyChannel):
            return await self.current.request(message, headers)
        reply = await final_reply(await self.current.request(message, headers), DISCOVER_TIMEOUT)
        if not refused_initialize(reply):
            self.decided(False)
            return Answered(reply)
        # Refused: bridged only if the server answers server/discover as a 2026-07-28 server does.
        legacy = LegacyChannel(await self.upstream.open(_ignore, shared=True), self.on_unsolicited, self.count)
        answer = await legacy.answer_initialize(message)
        if answer.kind is not Kind.RESPONSE:
            await legacy.channel.close()
            return Answered(reply)
        self.decided(True)
        await self.current.close()
        self.current = legacy
        return Answered(answer)

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
