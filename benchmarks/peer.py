"""The peer proxy: the ``mcp-proxy`` package from PyPI, in a virtual environment of its own.

It pins an older ``mcp`` than this project, so it cannot share our environment.
The harness creates the environment once (in a cache folder) with the ordinary
``venv`` and ``pip``, and reuses it on later runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

PEER_REQUIREMENT = "mcp-proxy==0.13.0"


class PeerUnavailable(Exception):
    """The peer could not be installed; its rows are reported as missing, with this reason."""


def default_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "shadowproxy-bench" / "mcp-proxy-venv"


async def ensure_peer(venv: Path, *, step_seconds: float = 300.0) -> Path:
    """The path of the ``mcp-proxy`` command in ``venv``, installing it there first if needed."""
    command = venv / "bin" / "mcp-proxy"
    if command.exists():
        return command
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / "mcp-proxy-install.log"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", PEER_REQUIREMENT],
    ]
    with log.open("wb") as out:
        for step in steps:
            process = await asyncio.create_subprocess_exec(*step, stdout=out, stderr=out)
            try:
                async with asyncio.timeout(step_seconds):
                    code = await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                raise PeerUnavailable(f"{' '.join(step)} took over {step_seconds:.0f} s; see {log}") from None
            if code != 0:
                raise PeerUnavailable(f"{' '.join(step)} exited with {code}; see {log}")
    if not command.exists():
        raise PeerUnavailable(f"{PEER_REQUIREMENT} installed no mcp-proxy command in {venv}")
    return command
