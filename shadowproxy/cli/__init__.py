"""The ``shadowproxy`` commands; :func:`entry` is the console script (the commands are in :mod:`.main`)."""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence

SERVING = {"run": "shadowproxy.serve.runner", "stdio": "shadowproxy.serve.stdio"}
"""What each serving command imports before it starts (stdio: no aiohttp unless its upstream is a URL)."""


def entry(argv: Sequence[str] | None = None) -> int:
    """Run one command, its start-up without the cyclic garbage collector.

    Start-up allocates tens of thousands of long-lived objects (modules, classes, pydantic's schemas) and frees
    almost none, so each collection the allocations trigger scans them all for nothing: about a tenth of the
    time to an open port. They are frozen once loaded (``gc.freeze``), which also keeps later collections from
    scanning them again.
    """
    words = sys.argv[1:] if argv is None else list(argv)
    enabled = gc.isenabled()
    gc.disable()
    try:
        command = importlib.import_module("shadowproxy.cli.main")

        if words[:1] and words[0] in SERVING:
            importlib.import_module(SERVING[words[0]])  # what serving imports, loaded with the rest
        gc.freeze()
    finally:
        if enabled:
            gc.enable()
    return command.main(argv)
