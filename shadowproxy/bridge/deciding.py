"""The first handshake-era session of an upstream whose era is not known yet: its ``initialize`` decides.

The client's ``initialize`` goes up as it came. A server that answers it is met directly, by this session and
every later one (they get the upstream's own channel, no wrapper); one that refuses it as a 2026-07-28-only
server does makes this session and every later one a :class:`~shadowproxy.bridge.legacy_client.LegacyChannel`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shadowproxy.bridge.legacy_client import LegacyChannel
from shadowproxy.core.errors import INVALID_PARAMS
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.core.protocol import HANDSHAKE_VERSIONS
from shadowproxy.upstreams.base import Channel, Exchange, UnsolicitedHandler, Upstream, Wrapped

# Method not found, unsupported version, invalid request, and invalid params: the SDK's 2026-07-28 HTTP entry
# answers an initialize without the 2026-07-28 envelope with -32602. A refusal is only a hint: the server must then
# answer server/discover for the session to be bridged.
REFUSALS = frozenset({-32601, -32022, -32600, -32602})


def refused_initialize(reply: Message, initialize: Message) -> bool:
    """Whether ``reply`` to ``initialize`` says the server does not speak the handshake era. Invalid params are such
    a refusal only when the params are valid: otherwise a server of either era says the same of them."""
    code = (reply.error or {}).get("code") if reply.kind is Kind.ERROR else None
    if code == INVALID_PARAMS:
        params = initialize.params
        return (
            isinstance(params, dict)
            and params.get("protocolVersion") in HANDSHAKE_VERSIONS
            and isinstance(params.get("capabilities"), dict)
            and isinstance(params.get("clientInfo"), dict)
        )
    return code in REFUSALS


def _ignore(message: Message) -> None:
    """The stateless channel's unsolicited messages: a 2026-07-28 server sends none outside a listen stream."""


async def legacy_session(
    upstream: Upstream, initialize: Message, on_unsolicited: UnsolicitedHandler, count: Callable[[str | None], None]
) -> tuple[LegacyChannel, Message] | None:
    """A handshake-era session carried on ``upstream``'s stateless channel, and its answer to ``initialize``
    (made from ``server/discover``); ``None`` when the server does not answer that either."""
    legacy = LegacyChannel(await upstream.open(_ignore, shared=True), on_unsolicited, count)
    answer = await legacy.answer_initialize(initialize)
    if answer.kind is not Kind.RESPONSE:
        await legacy.channel.close()
        return None
    return legacy, answer


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
        # The channel this one stands for once the initialize has decided: the session takes it in this one's
        # place (SessionManager.activate), so its later requests pay for no wrapper.
        self.settled: Channel | None = None

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
        bridged = await legacy_session(self.upstream, initialize, self.on_unsolicited, self.count)
        if bridged is None:
            return refusal
        self.decided(True)
        await self.current.close()
        self.current, answer = bridged
        self.settled = self.current
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


class DecidingExchange(Wrapped):
    """The answer to the first ``initialize``, read as it comes (the front streams and times it as any other);
    its reply decides."""

    def __init__(self, owner: DecidingChannel, initialize: Message, inner: Exchange) -> None:
        super().__init__(inner)
        self.owner = owner
        self.initialize = initialize
        self.bridged = False

    @property
    def status(self) -> int | None:
        # The refusal's HTTP status (a 2026-07-28 server over HTTP may refuse with 400) is not the bridge's answer's.
        return None if self.bridged else self.inner.status

    async def next(self) -> Message:
        message = await self.inner.next()
        if not message.is_reply:
            return message
        if not refused_initialize(message, self.initialize):
            self.owner.decided(False)
            self.owner.settled = self.owner.current
            return message
        answer = await self.owner.bridge(self.initialize, message)
        self.bridged = answer is not message
        return answer
