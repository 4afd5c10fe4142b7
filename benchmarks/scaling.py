"""Scaling: throughput and memory as the proxy holds more sessions, ``python -m benchmarks.scaling``.

One ``shadowproxy run`` (memory store, the fast server as one ``share: true``
stdio child, the session limits raised) is taken through steps of N idle
sessions (1, 10, 100, 1,000, 10,000 by default). At each step the idle
sessions are opened (``initialize``, ``notifications/initialized``; their
connections are then closed, the sessions stay), and a fixed set of active
clients (16 by default, each its own session and keep-alive connection) runs
closed loops of echo calls for a few seconds. Reported per step: live
sessions, seconds to open the step's new idle sessions, requests/s and
latency of the active clients, the proxy's RSS and KB per session over the
baseline, and live tasks. Flat throughput and flat
tasks across the steps mean no per-request work grows with the number of
sessions, and no task is kept per idle session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import uvloop

from benchmarks.http_load import HttpLoad
from benchmarks.streams_load import PARALLEL, Proxy, Reading, open_session, raise_fd_limit, settle

STEPS = (1, 10, 100, 1000, 10000)


@dataclass(frozen=True, slots=True)
class Step:
    idle_sessions: int
    live_sessions: int
    open_seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mib: float
    kb_per_session: float
    tasks: int


async def measure(proxy: Proxy, clients: int, warmup: float, duration: float) -> tuple[float, float, float, int]:
    """The active clients' closed loops: requests/s, p50 and p99 in ms, errors."""
    load = HttpLoad(proxy.url, clients)
    await load.start()
    try:
        await asyncio.sleep(warmup)
        load.recorder.reset()
        await asyncio.sleep(duration)
        summary = load.recorder.summary()
    finally:
        await load.stop()
    return summary.rps, summary.p50_ms, summary.p99_ms, summary.errors


async def run(steps: tuple[int, ...], clients: int, warmup: float, duration: float) -> list[Step]:
    total = max(steps) + clients * (len(steps) + 1)
    raise_fd_limit(clients + PARALLEL + 256)
    results: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="scaling-") as folder:
        proxy = Proxy(Path(folder), total)
        await proxy.start()
        try:
            async with aiohttp.ClientSession() as control:
                gate = asyncio.Semaphore(PARALLEL)
                # One warm-up session and loop first: first-use costs belong to the baseline.
                await measure(proxy, clients, warmup, 0.1)
                baseline: Reading = await settle(proxy, control)
                opened = 0
                for target in steps:
                    pool = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=PARALLEL))
                    began = time.perf_counter()
                    async with pool:
                        await asyncio.gather(*(open_session(pool, proxy.url, gate) for _ in range(target - opened)))
                    open_seconds = time.perf_counter() - began
                    opened = target
                    rps, p50, p99, errors = await measure(proxy, clients, warmup, duration)
                    reading = await settle(proxy, control)
                    grown = reading.rss_kb - baseline.rss_kb
                    results.append(
                        Step(
                            idle_sessions=target,
                            live_sessions=reading.sessions,
                            open_seconds=open_seconds,
                            requests_per_second=rps,
                            p50_ms=p50,
                            p99_ms=p99,
                            errors=errors,
                            rss_mib=reading.rss_kb / 1024,
                            kb_per_session=grown / max(reading.sessions - baseline.sessions, 1),
                            tasks=reading.tasks,
                        )
                    )
                    print(f"... {target} idle sessions: {rps:,.0f} req/s", file=sys.stderr)
        finally:
            await proxy.stop()
    return results


def report(steps: list[Step], clients: int) -> str:
    rows = [
        f"scaling: {clients} active clients while the proxy holds N idle sessions (one shared stdio child)",
        f"{'idle N':>8}{'live':>8}{'open s':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'err':>5}{'RSS MiB':>9}"
        f"{'KB/sess':>9}{'tasks':>7}",
    ]
    for step in steps:
        rows.append(
            f"{step.idle_sessions:>8}{step.live_sessions:>8}{step.open_seconds:>8.2f}{step.requests_per_second:>10,.0f}{step.p50_ms:>9.3f}"
            f"{step.p99_ms:>9.3f}{step.errors:>5}{step.rss_mib:>9.1f}{step.kb_per_session:>9.1f}{step.tasks:>7}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="idle session counts, ascending")
    parser.add_argument("--clients", type=int, default=16, help="active clients at each step (default 16)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per step")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per step")
    parser.add_argument("--json", type=Path, help="also write the steps as JSON to this file")
    args = parser.parse_args(argv)
    try:
        steps = tuple(int(part) for part in args.steps.split(","))
    except ValueError:
        parser.error("--steps takes comma-separated integers, such as 1,100,10000")
    if not steps or any(step < 1 for step in steps) or list(steps) != sorted(steps):
        parser.error("--steps must be ascending integers of 1 or more")
    if args.clients < 1:
        parser.error("--clients must be 1 or more")
    results = uvloop.run(run(steps, args.clients, args.warmup, args.duration))
    print(report(results, args.clients))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(step) for step in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
