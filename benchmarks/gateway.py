"""Figures for virtual servers: parallel start, ``tools/list`` bytes with and without tool search, and repeated
``tools/list`` through the list cache against the member direct.

    python -m benchmarks.gateway

Starts ``shadowproxy run`` with members built from ``tests/servers/gateway_member.py``; prints one line per figure.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp.client import Client

from tests.support import REPO, ProxyProcess

MEMBER = REPO / "tests" / "servers" / "gateway_member.py"


SLOW = REPO / "tests" / "servers" / "slow_start.py"


def member(*args: str, share: bool = False) -> str:
    return f'{{command: "{sys.executable} {MEMBER} {" ".join(args)}", share: {str(share).lower()}}}'


def slow(seconds: float) -> str:
    return f'{{command: "{sys.executable} {SLOW} {seconds}"}}'


async def with_proxy(config: str, folder: Path, name: str) -> ProxyProcess:
    path = folder / f"{name}.yaml"
    path.write_text(config + "health: {interval: 0}\n")
    return await ProxyProcess(folder / f"{name}.log").start("--config", str(path))


async def first_list(url: str) -> float:
    """Seconds from a new session's start to its first tools/list answered."""
    began = time.perf_counter()
    async with Client(url, mode="legacy") as client:
        await client.list_tools(cache_mode="bypass")
        return time.perf_counter() - began


async def parallel_start(folder: Path) -> None:
    """Each session starts its own member processes (stdio, not shared), each sleeping 0.5 s before it serves."""
    config = f"""
upstreams:
  one: {slow(0.5)}
  two: {slow(0.5)}
  three: {slow(0.5)}
virtual_servers:
  all: {{upstreams: [one, two, three]}}
  single: {{upstreams: [one]}}
"""
    proxy = await with_proxy(config, folder, "start")
    try:
        single = [await first_list(f"{proxy.base}/mcp/single") for _ in range(5)]
        three = [await first_list(f"{proxy.base}/mcp/all") for _ in range(5)]
    finally:
        await proxy.stop()
    print(f"first tools/list, one member taking 0.5 s to start: {min(single):.2f} s (best of 5)")
    print(f"first tools/list, three members each taking 0.5 s:   {min(three):.2f} s (best of 5)")
    print(f"  sequential start would be about {3 * min(single):.2f} s")


async def search_bytes(folder: Path) -> None:
    config = f"""
upstreams:
  big: {member("--tools", "150", share=True)}
  more: {member("--tools", "148", share=True)}
virtual_servers:
  listed: {{upstreams: [big, more], page_size: 1000}}
  searched: {{upstreams: [big, more], discovery: search}}
"""
    proxy = await with_proxy(config, folder, "search")
    try:
        sizes = {}
        for name in ("listed", "searched"):
            async with Client(f"{proxy.base}/mcp/{name}", mode="legacy") as client:
                result = await client.list_tools(cache_mode="bypass")
                sizes[name] = (len(result.tools), len(result.model_dump_json(by_alias=True, exclude_none=True)))
    finally:
        await proxy.stop()
    for name, (count, size) in sizes.items():
        print(f"tools/list of the 300-tool aggregate, {name}: {count} tools, {size:,} bytes")


async def cached_lists(folder: Path) -> None:
    config = f"""
upstreams:
  big: {member("--tools", "200", share=True)}
virtual_servers:
  all: {{upstreams: [big], page_size: 1000}}
"""
    proxy = await with_proxy(config, folder, "cache")
    try:
        for path, label in ((f"{proxy.base}/mcp/big", "direct mount"), (f"{proxy.base}/mcp/all", "through the cache")):
            async with Client(path, mode="legacy") as client:
                await client.list_tools(cache_mode="bypass")
                times = []
                for _ in range(50):
                    began = time.perf_counter()
                    await client.list_tools(cache_mode="bypass")
                    times.append(time.perf_counter() - began)
            print(f"tools/list of a 200-tool server, {label}: p50 {statistics.median(times) * 1000:.1f} ms")
    finally:
        await proxy.stop()


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        await parallel_start(Path(folder))
        await search_bytes(Path(folder))
        await cached_lists(Path(folder))


if __name__ == "__main__":
    asyncio.run(main())
