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

With ``--streams M`` a last step opens M GET SSE streams on M of the idle
sessions, each on its own connection, leaves them idle and measures again:
the cost of an idle stream and the throughput while they are held. The
descriptor limit is raised for the harness and the proxy (both hold one socket
per stream), the hard limit too when the harness runs as root.
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
from benchmarks.procstat import cpu_seconds
from benchmarks.streams_load import PARALLEL, Proxy, Reading, open_session, open_stream, raise_fd_limit, settle

STEPS = (1, 10, 100, 1000, 10000)
FULL = "1000,10000,100000"
"""The issue's curve: ``--steps 1000,10000,100000 --streams 10000``."""


@dataclass(frozen=True, slots=True)
class Step:
    idle_sessions: int
    streams: int
    live_sessions: int
    open_seconds: float
    opened: int
    """Sessions (or streams) this step opened in ``open_seconds``."""
    open_cpu_us: float
    """The proxy's CPU (user + system, its process only) per session or stream opened, in microseconds: growth
    with N here would be per-session work that scans the sessions held."""
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mib: float
    kb_per_session: float
    bytes_per_session: float
    kb_per_stream: float
    tasks: int


@dataclass(frozen=True, slots=True)
class Figures:
    """One step's measurement: the active clients' figures and the proxy's reading after them."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    reading: Reading

    def step(
        self, idle: int, streams: int, opening: tuple[float, int, float], kb_session: float, kb_stream: float
    ) -> Step:
        seconds, opened, cpu = opening
        return Step(
            idle_sessions=idle,
            streams=streams,
            live_sessions=self.reading.sessions,
            open_seconds=seconds,
            opened=opened,
            open_cpu_us=cpu / max(opened, 1) * 1e6,
            requests_per_second=self.rps,
            p50_ms=self.p50_ms,
            p99_ms=self.p99_ms,
            errors=self.errors,
            rss_mib=self.reading.rss_kb / 1024,
            kb_per_session=kb_session,
            bytes_per_session=kb_session * 1024,
            kb_per_stream=kb_stream,
            tasks=self.reading.tasks,
        )


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


async def run(steps: tuple[int, ...], clients: int, warmup: float, duration: float, streams: int = 0) -> list[Step]:
    total = max(steps) + clients * (len(steps) + 2)
    if streams > max(steps):
        raise SystemExit(f"--streams {streams}: only {max(steps)} idle sessions to open them on")
    raise_fd_limit(streams + clients + PARALLEL + 256)
    results: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="scaling-") as folder:
        proxy = Proxy(Path(folder), total)
        await proxy.start()
        held: list[aiohttp.ClientResponse] = []
        try:
            control = aiohttp.ClientSession()
            holders = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            async with control, holders:
                gate = asyncio.Semaphore(PARALLEL)
                # One warm-up session and loop first: first-use costs belong to the baseline.
                await measure(proxy, clients, warmup, 0.1)
                baseline: Reading = await settle(proxy, control)
                ids: list[str] = []
                for target in steps:
                    pool = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=PARALLEL))
                    began, cpu = time.perf_counter(), cpu_seconds(proxy.pid)
                    async with pool:
                        opened = (open_session(pool, proxy.url, gate) for _ in range(target - len(ids)))
                        ids += await asyncio.gather(*opened)
                    open_seconds, cpu = time.perf_counter() - began, cpu_seconds(proxy.pid) - cpu
                    rps, p50, p99, errors = await measure(proxy, clients, warmup, duration)
                    reading = await settle(proxy, control)
                    per = (reading.rss_kb - baseline.rss_kb) / max(reading.sessions - baseline.sessions, 1)
                    added = target - (results[-1].idle_sessions if results else 0)
                    figures = Figures(rps, p50, p99, errors, reading)
                    results.append(figures.step(target, 0, (open_seconds, added, cpu), per, 0.0))
                    print(f"... {target} idle sessions: {rps:,.0f} req/s, {per * 1024:,.0f} B/session", file=sys.stderr)
                if streams:
                    before = results[-1]
                    began, cpu = time.perf_counter(), cpu_seconds(proxy.pid)
                    for start in range(0, streams, PARALLEL):
                        batch = ids[start : min(start + PARALLEL, streams)]
                        held.extend(await asyncio.gather(*(open_stream(holders, proxy.url, s) for s in batch)))
                    open_seconds, cpu = time.perf_counter() - began, cpu_seconds(proxy.pid) - cpu
                    rps, p50, p99, errors = await measure(proxy, clients, warmup, duration)
                    reading = await settle(proxy, control)
                    per_stream = (reading.rss_kb - before.rss_mib * 1024) / streams
                    figures = Figures(rps, p50, p99, errors, reading)
                    results.append(
                        figures.step(
                            before.idle_sessions,
                            streams,
                            (open_seconds, streams, cpu),
                            before.kb_per_session,
                            per_stream,
                        )
                    )
                    print(f"... + {streams} idle GET streams: {rps:,.0f} req/s", file=sys.stderr)
                for stream in held:
                    stream.close()
        finally:
            await proxy.stop()
    return results


def report(steps: list[Step], clients: int) -> str:
    rows = [
        f"scaling: {clients} active clients while the proxy holds N idle sessions (one shared stdio child)",
        f"{'idle N':>8}{'streams':>8}{'live':>8}{'open s':>8}{'open/s':>8}{'us/open':>8}{'req/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'err':>5}{'RSS MiB':>9}{'B/sess':>8}{'KB/strm':>8}{'tasks':>7}",
    ]
    for step in steps:
        stream = f"{step.kb_per_stream:>8.1f}" if step.streams else f"{'':>8}"
        rows.append(
            f"{step.idle_sessions:>8}{step.streams:>8}{step.live_sessions:>8}{step.open_seconds:>8.2f}"
            f"{step.opened / max(step.open_seconds, 1e-9):>8,.0f}{step.open_cpu_us:>8,.0f}"
            f"{step.requests_per_second:>10,.0f}{step.p50_ms:>9.3f}{step.p99_ms:>9.3f}{step.errors:>5}"
            f"{step.rss_mib:>9.1f}{step.bytes_per_session:>8,.0f}{stream}{step.tasks:>7}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", default=",".join(map(str, STEPS)), help=f"idle session counts, ascending (the issue's: {FULL})"
    )
    parser.add_argument("--streams", type=int, default=0, help="then hold this many idle GET streams (0: none)")
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
    if args.streams < 0:
        parser.error("--streams must be 0 or more")
    results = uvloop.run(run(steps, args.clients, args.warmup, args.duration, args.streams))
    print(report(results, args.clients))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(step) for step in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
