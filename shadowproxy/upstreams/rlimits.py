"""The resource limits a stdio server's process starts with (``upstreams.<name>.limits``)."""

from __future__ import annotations

import resource
from collections.abc import Callable

from shadowproxy.config.limits import UpstreamLimits


def preexec(limits: UpstreamLimits) -> Callable[[], None] | None:
    """What the forked child runs before exec: system calls only, on values computed here, so it takes no lock.

    Soft and hard limit both, so the server cannot raise them again; never above the proxy's own hard limit,
    which an unprivileged process cannot exceed (the child would fail to start).
    """
    chosen = limits.rlimits
    if not chosen:
        return None

    def apply() -> None:
        for which, value in chosen:
            hard = resource.getrlimit(which)[1]
            bound = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (bound, bound))

    return apply
