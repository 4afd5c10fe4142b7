"""A session whose upstream lives in another instance: the channel that forwards to it through Redis.

:class:`RemoteChannel` is a :class:`~shadowproxy.upstreams.base.Channel`, so the
client side serves a session held elsewhere exactly as one held here: the
chain runs here, and only what passes it is forwarded. When the owner is gone
(nobody receives what is published to it), the channel claims the session
(one atomic Redis operation decides between instances racing for it) and
either carries it on here, with a new child brought up by the replayed
handshake, or forwards to the instance that won.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import Message
from shadowproxy.sessions.manager import RESTORE_TIMEOUT, LiveSession
from shadowproxy.upstreams.base import Channel, Exchange
from shadowproxy.upstreams.credentials import exchanged_for

if TYPE_CHECKING:
    from shadowproxy.cluster.bus import Bus

log = logging.getLogger(__name__)

REROUTES = 3
"""How often one call follows a lost owner to the next one before it gives up."""


class RemoteExchange(Inbox[Message]):
    """The owner's messages for one forwarded request, put here by the member's listener."""

    __slots__ = ("done", "key", "member", "owner", "request_id")
    status = None
    streaming = False
    controls: tuple[bytes, ...] = ()
    event_id = None

    def __init__(self, member: Bus, key: int, owner: str, request_id: object) -> None:
        super().__init__()
        self.member = member
        self.key = key
        self.owner = owner
        self.request_id = request_id
        self.done = False

    async def next(self) -> Message:
        message = await super().next()
        if message.is_reply and message.id == self.request_id:
            self.done = True
        return message

    async def close(self, *, cancel: bool = False) -> None:
        self.member.exchanges.pop(self.key, None)
        if cancel and not self.done:
            self.member.post(self.member.keys.node(self.owner), {"t": "cancel", "k": self.key, "r": self.member.id})


class RemoteChannel:
    """One session's path to the instance that runs its upstream; after a takeover, to the local channel."""

    upstream_session_id = None

    def __init__(self, member: Bus, session: LiveSession, owner: str) -> None:
        self.member = member
        self.session = session
        self.owner = owner
        self.local: Channel | None = None
        self._lock = asyncio.Lock()

    async def _header(self, kind: str) -> dict[str, object]:
        """The frame's header. The owner adds the upstream credentials of the principal (``u``) named here; tokens
        exchanged for the client's (``x``) are made on this instance, which alone ever holds the client's own."""
        session = self.session
        header = {
            "t": kind,
            "s": session.id,
            "p": session.mount.path,
            "u": session.record.principal,
            "r": self.member.id,
        }
        if kind != "listen":
            header.update(await exchanged_for(session.mount.upstream))
        return header

    async def request(self, message: Message, headers: Mapping[str, str]) -> Exchange:
        for _ in range(REROUTES):
            if self.local is not None:
                return await self.local.request(message, headers)
            owner = self.owner
            exchange = RemoteExchange(self.member, self.member.next_key(), owner, message.id)
            self.member.exchanges[exchange.key] = exchange
            header = {**await self._header("req"), "k": exchange.key, "h": dict(headers)}
            if await self.member.publish(self.member.keys.node(owner), header, message.to_bytes()):
                return exchange
            self.member.exchanges.pop(exchange.key, None)
            await self.reroute(owner)
        raise UpstreamError("the instance holding this session could not be reached")

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        for _ in range(REROUTES):
            if self.local is not None:
                await self.local.send(message, headers)
                return
            owner = self.owner
            header = {**await self._header("send"), "h": dict(headers)}
            if await self.member.publish(self.member.keys.node(owner), header, message.to_bytes()):
                return
            await self.reroute(owner)
        raise UpstreamError("the instance holding this session could not be reached")

    async def listen(self, headers: Mapping[str, str]) -> Exchange | None:
        """Ask the owner to relay the session's unsolicited messages here; they arrive in the session's inbox."""
        for _ in range(REROUTES):
            if self.local is not None:
                return await self.local.listen(headers)
            owner = self.owner
            if await self.member.publish(self.member.keys.node(owner), await self._header("listen")):
                return None
            await self.reroute(owner)
        raise UpstreamError("the instance holding this session could not be reached")

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        """Nothing to resume here: the owner's channel carries the session on."""

    async def close(self) -> None:
        """Only a local channel (after a takeover) is closed here; the owner hears of a closed session by broadcast."""
        if self.local is not None:
            await self.local.close()

    async def detach(self) -> None:
        if self.local is not None:
            await self.local.detach()

    async def reroute(self, lost: str) -> None:
        """The owner ``lost`` did not receive a message: claim the session, or learn who did."""
        async with self._lock:
            if self.local is not None or self.owner != lost:
                return  # another request of this session has rerouted already
            record = self.session.record
            owner = await self.member.claim(record.id, lost)
            if owner == lost:
                # Alive for Redis (or Redis has just come back and cannot tell yet): it is reconnecting.
                await self.member.listening(lost)
                return
            if owner != self.member.id:
                log.info("session %s moved from instance %s to %s", record.id[:8], lost, owner)
                self.owner = owner
                return
            mount = self.session.mount
            channel = await mount.open_channel(self.session.on_unsolicited)
            try:
                async with asyncio.timeout(RESTORE_TIMEOUT):
                    await channel.resume(record.upstream_session_id, record.init_request)
            except BaseException:
                await channel.close()
                raise
            self.local = channel
            self.session.channel = channel
            self.member.adopt(self.session)
            log.info("took over session %s from lost instance %s", record.id[:8], lost)
