"""Tool pins across a cluster: an approval (or a reset) made on one instance holds on every other at once.

The store keeps each instance's pins for the next start (:mod:`shadowproxy.interceptors.pinning`); this carries
the decision itself: a ``pin`` broadcast with the approved definition, which every other instance applies to its
pin book as it arrives, so a tool refused in block mode is callable everywhere once it is approved anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shadowproxy.cluster.member import ClusterMember


class SharedPins(Protocol):
    """What the cluster sets and calls on the pin book (:class:`shadowproxy.interceptors.pin_book.PinBook`)."""

    announce: Callable[[dict[str, Any]], None] | None

    def apply(self, told: dict[str, Any]) -> None: ...


def share(member: ClusterMember, pins: SharedPins) -> None:
    """Tell the other instances of each approval and reset, and apply theirs."""

    def announce(told: dict[str, Any]) -> None:
        member.post(member.keys.broadcast, {"t": "pin", "r": member.id, **told})

    pins.announce = announce
    member.on_pin = pins.apply
