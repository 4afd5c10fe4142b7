"""Breakpoints across a cluster: one set or cleared on any instance stops messages on every instance.

Behind a load balancer the operator's ``POST /breakpoints`` reaches one instance, and the calls it means to stop
reach any. After each change the instance posts its whole list on the broadcast channel, and every other
instance takes it as its own; the list is kept in the store too, where an instance that starts later reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from shadowproxy.core.tasks import spawn
from shadowproxy.stores import SessionStore, StoreError

if TYPE_CHECKING:
    from shadowproxy.cluster.member import ClusterMember

log = logging.getLogger(__name__)

SPACE, KEY = "breakpoints", "all"


def share(
    member: ClusterMember,
    store: SessionStore,
    listed: Callable[[], list[dict[str, Any]]],
    replace: Callable[[list[dict[str, Any]]], None],
) -> Callable[[], None]:
    """Carry this instance's changes out and the others' in; the callable to run after each change here."""

    def changed() -> None:
        breakpoints = listed()
        member.post(member.keys.broadcast, {"t": "bps", "r": member.id, "l": breakpoints})
        spawn(store.put_entry(SPACE, KEY, orjson.dumps(breakpoints)), name="breakpoints-kept")

    member.on_breakpoints = replace
    return changed


async def load(store: SessionStore, replace: Callable[[list[dict[str, Any]]], None]) -> None:
    """The cluster's breakpoints, as the store keeps them, for an instance that starts."""
    try:
        kept = await store.entry(SPACE, KEY)
    except (StoreError, OSError) as exc:  # down: this instance starts with none, and hears the next change
        log.warning("could not read the cluster's breakpoints: %s", exc)
        return
    if kept:
        replace(orjson.loads(kept))
