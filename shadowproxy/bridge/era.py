"""Whether a mount's 2026-07-28 requests need the bridge, found out once, and the bridge itself.

``bridge: auto`` (the default) asks the upstream ``server/discover`` the first time a 2026-07-28 request comes:
an answer naming 2026-07-28 means the two sides meet directly and nothing changes; any error means the server
speaks only the handshake era, and the mount's logical sessions get a
:class:`~shadowproxy.bridge.channel.BridgedChannel`. ``era: handshake`` says so without asking; ``bridge:
always`` bridges whatever the server speaks; ``bridge: off`` never builds an :class:`EraBridge`.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter

from shadowproxy import __version__
from shadowproxy.bridge.channel import BridgedChannel
from shadowproxy.bridge.deciding import DecidingChannel, legacy_session
from shadowproxy.bridge.exchanges import Parking
from shadowproxy.bridge.legacy_client import LegacyChannel
from shadowproxy.bridge.pool import HandshakePool
from shadowproxy.bridge.shapes import META_CLIENT_CAPABILITIES
from shadowproxy.config.bridge import BridgeMode as Mode
from shadowproxy.config.bridge import Era
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.core.protocol import META_CLIENT_INFO, META_PROTOCOL_VERSION, MODERN_VERSION, VERSION_HEADER
from shadowproxy.upstreams.base import Channel, UnsolicitedHandler, Upstream, final_reply

log = logging.getLogger(__name__)

BRIDGED = Counter(
    "shadowproxy_bridged_requests",
    "Requests carried across protocol eras by the bridge, by upstream, direction and method.",
    ["upstream", "direction", "method"],
)
MODERN_TO_HANDSHAKE = "modern_to_handshake"
HANDSHAKE_TO_MODERN = "handshake_to_modern"
PROBE_TIMEOUT = 10.0
PROBE_ID = "shadowproxy-era"
IDLE = 300.0
COUNTED = frozenset(
    {
        "server/discover",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "completion/complete",
        "subscriptions/listen",
    }
)
"""The methods the metric names; any other is counted as ``other`` (a client cannot grow the label set)."""


def discover_probe() -> Message:
    meta = {
        META_PROTOCOL_VERSION: MODERN_VERSION,
        META_CLIENT_INFO: {"name": "shadowproxy", "version": __version__},
        META_CLIENT_CAPABILITIES: {},
    }
    body = {"jsonrpc": "2.0", "id": PROBE_ID, "method": "server/discover", "params": {"_meta": meta}}
    return Message(Kind.REQUEST, body)


def _ignore(message: Message) -> None:
    """The probe's channel has no session to give unsolicited messages to."""


async def speaks_modern(upstream: Upstream) -> bool:
    """Whether ``upstream`` answers ``server/discover`` (and, if it lists its versions, names 2026-07-28); raises
    when it cannot be reached."""
    channel = await upstream.open(_ignore, shared=True)
    exchange = await channel.request(
        discover_probe(), {VERSION_HEADER: MODERN_VERSION, "Mcp-Method": "server/discover"}
    )
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            reply = await final_reply(exchange)
    except TimeoutError:
        # Not knowing is no reason to change what passes: the requests go through as the client sent them.
        log.warning(
            "upstream %s did not answer server/discover in %.0f s: 2026-07-28 requests pass unbridged "
            "(era: handshake in its config bridges them)",
            upstream.name,
            PROBE_TIMEOUT,
        )
        return True
    return answers_modern(reply)


def answers_modern(reply: Message) -> bool:
    """Whether ``reply`` to :func:`discover_probe` is a 2026-07-28 server's."""
    if reply.kind is not Kind.RESPONSE:
        return False
    # An answer is the server speaking 2026-07-28; only a list of versions without it says otherwise.
    versions = reply.result.get("supportedVersions") if isinstance(reply.result, dict) else None
    return MODERN_VERSION in versions if isinstance(versions, list) else True


class EraBridge:
    """The bridge of one mount: whether it is in use, its pooled sessions and parked requests."""

    def __init__(self, upstream: Upstream, mode: Mode, era: Era, idle: float = IDLE) -> None:
        self.upstream = upstream
        self.mode = mode
        self.era = era
        self.pool = HandshakePool(upstream, idle)
        self.parking = Parking(self.pool)
        self.bridged: bool | None = True if mode == "always" or era == "handshake" else None
        if era == "modern" and mode == "auto":
            self.bridged = False
        self._deciding = asyncio.Lock()
        # Whether handshake-era clients need the bridge: the server refuses initialize (None: not known yet).
        self.legacy: bool | None = True if era == "modern" else False if era == "handshake" else None

    async def channel_for(self, principal: str | None) -> BridgedChannel | None:
        """The bridged channel for a logical session of ``principal``, or ``None`` when it meets the upstream
        directly."""
        if self.bridged is None:
            async with self._deciding:
                if self.bridged is None:
                    self.settle(await speaks_modern(self.upstream))
        return BridgedChannel(self.pool, self.parking, self.count, principal) if self.bridged else None

    def settle(self, modern: bool) -> None:
        """What the server answered to ``server/discover`` (asked here, or by a front of its own server process)."""
        self.bridged = not modern
        if self.bridged:
            log.info("upstream %s speaks only the handshake era: 2026-07-28 requests are bridged", self.upstream.name)

    async def session_channel(self, on_unsolicited: UnsolicitedHandler) -> Channel:
        """The channel of a handshake-era client's session: the upstream's own, unless the server speaks only
        2026-07-28 (or may: the session's ``initialize`` decides, once)."""
        upstream = self.upstream
        if self.legacy is False or self.bridged is True:
            return await upstream.open(on_unsolicited)
        if self.legacy:
            return LegacyChannel(await upstream.open(_ignore, shared=True), on_unsolicited, self.count_legacy)
        direct = await upstream.open(on_unsolicited)
        return DecidingChannel(upstream, direct, on_unsolicited, self._decided, self.count_legacy)

    async def bridge_session(
        self, initialize: Message, on_unsolicited: UnsolicitedHandler
    ) -> tuple[LegacyChannel, Message] | None:
        """A session whose server refused its ``initialize`` (seen by a front that met the server directly, the
        stdio one): bridged, with the answer to give the client, if the server speaks 2026-07-28."""
        bridged = await legacy_session(self.upstream, initialize, on_unsolicited, self.count_legacy)
        if bridged is not None:
            self._decided(True)
        return bridged

    def _decided(self, legacy: bool) -> None:
        if legacy and not self.legacy:
            log.info("upstream %s refuses initialize: handshake-era clients are bridged", self.upstream.name)
        self.legacy = legacy

    def count(self, method: str | None) -> None:
        BRIDGED.labels(self.upstream.name, MODERN_TO_HANDSHAKE, method if method in COUNTED else "other").inc()

    def count_legacy(self, method: str | None) -> None:
        BRIDGED.labels(self.upstream.name, HANDSHAKE_TO_MODERN, method if method in COUNTED else "other").inc()

    def status(self) -> dict[str, object]:
        """What ``/readyz`` and the admin API show of the bridge."""
        return {
            "mode": self.mode,
            "bridged": self.bridged,
            "handshake_clients_bridged": self.legacy,
            "upstream_sessions": len(self.pool.sessions),
            "parked": len(self.parking.parked),
        }

    async def close(self) -> None:
        self.parking.close()
        await self.pool.close()


def create_bridge(upstream: Upstream, mode: Mode, era: Era) -> EraBridge | None:
    """The mount's bridge; ``None`` for ``bridge: off``."""
    if mode == "off":
        return None
    return EraBridge(upstream, mode, era)
