"""Held messages across a cluster: any instance decides, the one holding the message lets it go on.

The decision itself is made in the store (a compare-and-set, :mod:`shadowproxy.stores.holds`); this only
carries the news: a ``held`` broadcast names the settled hold, and the instance where it is parked reads how
it ended. An instance whose heartbeat is gone holds nothing any more: its pending holds are ended by the
next instance that starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shadowproxy.cluster.member import ClusterMember


class SharedHolds(Protocol):
    """What the cluster sets and calls on the hold registry (:class:`shadowproxy.control.HoldRegistry`)."""

    instance: str
    announce: Callable[[str], None] | None
    alive: Callable[[str], Awaitable[bool]]

    def settled_elsewhere(self, hold_id: str) -> None: ...


def share(member: ClusterMember, holds: SharedHolds) -> None:
    """Name the registry's holds after this instance, and carry decisions both ways on the broadcast channel."""
    holds.instance = member.id
    member.on_held = holds.settled_elsewhere

    def announce(hold_id: str) -> None:
        member.post(member.keys.broadcast, {"t": "held", "h": hold_id, "r": member.id})

    async def alive(instance: str) -> bool:
        from redis.exceptions import RedisError

        try:
            return bool(await member.redis.exists(member.keys.heartbeat(instance)))
        except (RedisError, OSError):
            return True  # unknown: never end another instance's hold on a guess

    holds.announce = announce
    holds.alive = alive
