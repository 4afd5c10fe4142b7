"""A bridged echo call against a direct one of the same server, through one proxy.

    python -m benchmarks.bridge [--calls N]

The same SDK test server (``tests/servers/sdk_server.py``'s tools) is mounted twice: ``direct``, which speaks
both eras (a 2026-07-28 request reaches it as it came), and ``bridged``, forced to the handshake era
(``tests/servers/handshake_only.py``: the proxy carries the request on a handshake session it owns). One
official SDK client in ``mode="2026-07-28"`` calls ``echo`` N times, in turn, on each; the figure is calls per
second and the bridged/direct ratio. Sequential on purpose: it is the bridge's cost per call, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mcp import Client

from tests.support import REPO, ProxyProcess, sdk_server_command


async def rate(url: str, calls: int) -> float:
    async with Client(url, mode="2026-07-28") as client:
        for _ in range(20):  # warm: the era probe, the bridge's session, the server's first calls
            await client.call_tool("echo", {"text": "warm"})
        started = time.perf_counter()
        for index in range(calls):
            await client.call_tool("echo", {"text": f"call {index}"})
        return calls / (time.perf_counter() - started)


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = {
            "upstreams": {
                "direct": {"command": sdk_server_command()},
                "bridged": {"command": [sys.executable, str(REPO / "tests" / "servers" / "handshake_only.py")]},
            }
        }
        path = Path(tmp) / "shadowproxy.yaml"
        path.write_text(yaml.safe_dump(config))
        proxy = ProxyProcess(Path(tmp) / "proxy.log")
        await proxy.start("--config", str(path))
        try:
            direct = await rate(f"{proxy.base}/mcp/direct", calls)
            bridged = await rate(f"{proxy.base}/mcp/bridged", calls)
        finally:
            await proxy.stop()
    print(f"direct   {direct:8.1f} calls/s")
    print(f"bridged  {bridged:8.1f} calls/s  ({bridged / direct:.0%} of direct)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(main(parser.parse_args().calls))
