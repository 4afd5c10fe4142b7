"""IBM ContextForge (``mcp-contextforge-gateway``) in front of the HTTP fast server: configured here, then driven."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from benchmarks.peer import Installed
from benchmarks.targets import Launcher, Target, TargetError


@contextlib.asynccontextmanager
async def contextforge_http(launcher: Launcher, peer: Installed) -> AsyncIterator[Target]:
    raise TargetError("not configured yet")
    yield Target()
