"""One member of a virtual server as one aggregate session holds it: its channel, or why it has none."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from shadowproxy.bridge.era import EraBridge
from shadowproxy.core.errors import JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import Message, notification
from shadowproxy.upstreams.base import Channel, UnsolicitedHandler, Upstream

log = logging.getLogger(__name__)

_ids = itertools.count(1)


def gateway_id() -> str:
    """An id for a request the gateway itself sends a member; never one a client could have chosen alike."""
    return f"shadowproxy-gateway-{next(_ids)}"


async def ask(
    channel: Channel, message: Message, headers: Mapping[str, str], other: Callable[[Message], None]
) -> Message:
    """Send ``message`` and return its reply; what the member sends meanwhile goes to ``other``."""
    exchange = await channel.request(message, headers)
    try:
        while True:
            incoming = await exchange.next()
            if incoming.is_reply:
                return incoming
            other(incoming)
    finally:
        await exchange.close()


async def close_quietly(channel: Channel) -> None:
    try:
        await channel.close()
    except (JsonRpcError, OSError) as exc:
        log.debug("closing a member's channel: %s", exc)


class MemberLink:
    """A member's channel in one aggregate session; ``problem`` says why it is left out, ``None`` when it serves."""

    def __init__(self, name: str, upstream: Upstream, bridge: EraBridge | None = None) -> None:
        self.name = name
        self.upstream = upstream
        # The member's era bridge, as its own mount has it: a member that speaks only the other era is met
        # through it, as a plain mount's clients meet it.
        self.bridge = bridge
        self.channel: Channel | None = None
        self.problem: str | None = "not started"
        self.result: dict[str, Any] = {}
        self.joining: asyncio.Task[None] | None = None
        self.listener: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self.channel is not None and self.problem is None

    async def start(
        self,
        handler: UnsolicitedHandler,
        *,
        shared: bool,
        init: Message | None,
        initialized: bool,
        headers: Mapping[str, str],
        principal: str | None = None,
    ) -> None:
        """Open the member's channel and, in the handshake era, give it the client's ``initialize``; raises
        :class:`UpstreamError` when it cannot."""
        channel = await self._open(handler, shared=shared, principal=principal)
        try:
            if init is not None:
                reply = await ask(channel, init.evolve(id=gateway_id()), headers, handler)
                if reply.error is not None:
                    raise UpstreamError(f"initialize failed: {reply.error.get('message')}")
                self.result = reply.result if isinstance(reply.result, dict) else {}
                if initialized:
                    await channel.send(notification("notifications/initialized"), headers)
        except BaseException:
            await close_quietly(channel)
            raise
        old, self.channel, self.problem = self.channel, channel, None
        if old is not None:
            await close_quietly(old)

    async def _open(self, handler: UnsolicitedHandler, *, shared: bool, principal: str | None) -> Channel:
        bridge = self.bridge
        if bridge is None:
            return await self.upstream.open(handler, shared=shared)
        if shared:
            bridged = await bridge.channel_for(principal)
            return bridged if bridged is not None else await self.upstream.open(handler, shared=True)
        return await bridge.session_channel(handler)

    def lose(self, problem: str) -> None:
        self.problem = problem
        if self.listener is not None:
            self.listener.cancel()
            self.listener = None

    async def close(self, *, detach: bool = False) -> None:
        for task in (self.joining, self.listener):
            if task is not None:
                task.cancel()
        channel, self.channel = self.channel, None
        if channel is None:
            return
        if detach:
            try:
                await channel.detach()
            except (JsonRpcError, OSError) as exc:
                log.debug("detaching a member's channel: %s", exc)
            return
        await close_quietly(channel)
