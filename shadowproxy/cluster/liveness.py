"""Which instances are alive: this one's heartbeat, its hold on its sessions, and waiting out a Redis that forgot.

Redis holds the cluster's idea of who lives (heartbeat keys, pub/sub
subscriptions) and who owns what (owner keys). A Redis that restarts empty, or
is flushed, forgets all of it at once, while every instance lives on. So a
forgetful Redis first gets a settling window of one ``heartbeat_ttl``: the
first heartbeat that finds the ``up`` marker gone writes it again and opens the
window, in which no claim judges an owner lost (see ``CLAIM_SCRIPT``), and each
instance whose own heartbeat key was gone writes the owner keys of the sessions
it holds again. A session whose owner key names another instance by then (this
one stalled past its heartbeat and was taken over) is let go of here: it is
forwarded to that owner from now on, so a session never has two children.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

import orjson
from redis.exceptions import RedisError

from shadowproxy.cluster.remote import RemoteChannel
from shadowproxy.cluster.wire import HEARTBEAT_SCRIPT
from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.tasks import spawn

if TYPE_CHECKING:
    from shadowproxy.cluster.bus import Bus
    from shadowproxy.sessions.manager import LiveSession

log = logging.getLogger(__name__)

POLL = 0.1
"""Seconds between looks at whether an owner that did not hear a message is listening again."""


class Liveness:
    """The heartbeat task of one member, and the checks other parts make on the liveness of instances."""

    def __init__(self, member: Bus) -> None:
        self.member = member
        self._beat = member.redis.register_script(HEARTBEAT_SCRIPT)

    async def run(self) -> None:
        member = self.member
        config = member.config
        announce = orjson.dumps({"pid": os.getpid(), "mounts": sorted(member.mounts)})
        keys = [member.keys.heartbeat(member.id), member.keys.up, member.keys.settling]
        args = [announce, int(config.heartbeat_ttl * 1000)]
        owner_ttl_ms = int(member.sessions.ttl * 1000)
        beaten = False
        while True:
            try:
                async with member.redis.pipeline(transaction=False) as pipe:
                    await self._beat(keys=keys, args=[*args, "1" if beaten else "0"], client=pipe)
                    member.adopted.intersection_update(member.sessions.live)
                    for session_id in member.adopted:
                        pipe.pexpire(member.keys.owner(session_id), owner_ttl_ms)
                    had_heartbeat = (await pipe.execute())[0]
                beaten = True
                if not had_heartbeat:
                    await self.reassert(owner_ttl_ms)
                await self.fail_lost_owners()
            except (RedisError, OSError) as exc:
                log.warning("cluster: heartbeat failed: %s", exc)
            await asyncio.sleep(config.heartbeat_interval)

    async def reassert(self, owner_ttl_ms: int) -> None:
        """Redis forgot this instance (restarted, flushed, or it stalled): say again which sessions it holds."""
        member = self.member
        held = [session for session in member.sessions.live.values() if self.holds(session)]
        if not held:
            return
        async with member.redis.pipeline(transaction=False) as pipe:
            for session in held:
                pipe.set(member.keys.owner(session.id), member.id, nx=True, px=owner_ttl_ms)
                pipe.get(member.keys.owner(session.id))
            results = await pipe.execute()
        lost = 0
        for session, owner in zip(held, results[1::2], strict=True):
            owner = owner.decode() if isinstance(owner, bytes) else owner
            if owner == member.id:
                member.adopted.add(session.id)
            elif owner:
                lost += 1
                self.let_go(session, owner)
        log.info("cluster: instance %s said again that it holds %d session(s)", member.id, len(held) - lost)

    def holds(self, session: LiveSession) -> bool:
        """Whether this instance runs the session's upstream (only those have an owner)."""
        return (
            session.channel is not None
            and not isinstance(session.channel, RemoteChannel)
            and self.member.owns_upstream(session.mount)
        )

    def let_go(self, session: LiveSession, owner: str) -> None:
        """Another instance took the session over while this one did not answer: forward to it, end the child here."""
        local = session.channel
        session.channel = RemoteChannel(self.member, session, owner)
        if local is not None:
            spawn(local.close(), name=f"cluster-let-go-{session.id[:8]}")
        log.warning("cluster: session %s is owned by instance %s now; its child here is ended", session.id[:8], owner)

    async def fail_lost_owners(self) -> None:
        """Requests forwarded to an instance that no longer listens (and is not handing over) get no answer."""
        member = self.member
        owners = sorted({exchange.owner for exchange in member.exchanges.values()})
        if not owners:
            return
        async with member.redis.pipeline(transaction=False) as pipe:
            pipe.pubsub_numsub(*(member.keys.node(owner) for owner in owners))
            for owner in owners:
                pipe.exists(member.keys.leaving(owner))
            numsub, *leaving = await pipe.execute()
        counts = dict(numsub)
        # One handing its sessions over listens no more, yet answers what it was sent.
        lost = {
            owner
            for owner, handing_over in zip(owners, leaving, strict=True)
            if not counts.get(member.keys.node(owner).encode()) and not handing_over
        }
        for exchange in [e for e in member.exchanges.values() if e.owner in lost]:
            member.exchanges.pop(exchange.key, None)
            exchange.fail(UpstreamError(f"instance {exchange.owner} holding this session was lost"))

    async def listening(self, instance: str) -> bool:
        """Wait (up to ``heartbeat_ttl``) for an instance judged alive to listen on its channel again."""
        member = self.member
        channel = member.keys.node(instance)
        for _ in range(max(1, int(member.config.heartbeat_ttl / POLL))):
            try:
                counts = dict(await member.redis.pubsub_numsub(channel))
            except (RedisError, OSError) as exc:
                raise UpstreamError(f"the cluster's Redis cannot be reached: {exc}") from None
            if counts.get(channel.encode()):
                return True
            await asyncio.sleep(POLL)
        return False
