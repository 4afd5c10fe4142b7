"""Per-principal upstream secrets across a cluster: a secret set or deleted on one instance is used by all.

The secret itself is in the store, which every instance shares (:mod:`shadowproxy.upstreams.secrets`); this
only carries the news: a ``secret`` broadcast names the upstream and principal, and each other instance drops
its decrypted copy, so the next request reads the store. Without it they would see the change within
``secrets.FRESH`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shadowproxy.cluster.member import ClusterMember


class SharedSecrets(Protocol):
    """What the cluster sets and calls on the secrets (:class:`shadowproxy.upstreams.secrets.SecretBox`)."""

    announce: Callable[[str, str], None] | None

    def forget(self, upstream: str, principal: str) -> None: ...


def share(member: ClusterMember, box: SharedSecrets) -> None:
    """Announce this instance's changes on the broadcast channel, and forget what the others changed."""
    member.on_secret = box.forget

    def announce(upstream: str, principal: str) -> None:
        member.post(member.keys.broadcast, {"t": "secret", "u": upstream, "p": principal, "r": member.id})

    box.announce = announce
