"""The event loop (uvloop where it exists) and the signals that stop it, shared by ``run`` and ``stdio``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("shadowproxy.serve.runner")  # the name its lines had before the stdio side moved out
FORCED_EXIT = 130


def run_loop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def install_signals(stop: Callable[[], None]) -> None:
    """The first SIGTERM or SIGINT calls ``stop``; a second one exits at once."""
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def on_signal(signum: int) -> None:
        if seen:
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(FORCED_EXIT)
        seen.append(signum)
        log.info("%s: shutting down gracefully", signal.Signals(signum).name)
        stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
