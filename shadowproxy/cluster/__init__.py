"""Several proxy instances behind one Redis, serving any session wherever its requests land.

    member      ClusterMember: heartbeat, pub/sub listener, forwarding, takeover, broadcasts
    remote      RemoteChannel: a session's channel to the instance that runs its upstream
    owner       the owner's side: forwarded messages run on this instance's own channels
    ratelimit   SharedRateCounter: the ``rate`` action counted across instances
    wire        key names, the frame format and the Redis scripts

Without a Redis store there is no cluster: :func:`join` returns ``None``, nothing
here is imported, and the hot path pays nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from shadowproxy.stores import parse_store_url

if TYPE_CHECKING:
    from shadowproxy.cluster.member import ClusterMember
    from shadowproxy.config import Config
    from shadowproxy.core.chain import Chain
    from shadowproxy.sessions.manager import Mount, SessionManager


def join(
    config: Config, sessions: SessionManager, mounts: list[Mount], chain: Chain, reload: Callable[[], Awaitable[bool]]
) -> ClusterMember | None:
    """This process's membership when the store is Redis (and the cluster is not turned off), wired in."""
    if not config.cluster.enabled or parse_store_url(config.store).scheme not in ("redis", "rediss"):
        return None
    from shadowproxy.cluster.member import ClusterMember

    member = ClusterMember(config.cluster, config.store, sessions, mounts, reload)
    sessions.cluster = member
    for interceptor in chain.interceptors:
        engine = getattr(interceptor, "engine", None)
        if engine is not None and hasattr(engine, "counter"):
            # The rules engine's ``rate`` action then counts for the whole cluster.
            engine.counter = member.counter
    return member
