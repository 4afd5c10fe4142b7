"""The end-to-end benchmark: ``python -m benchmarks.e2e [--quick] [--json PATH]`` from the repository root.

On loopback, in one invocation, bounded in time, it measures the load client
against the fast MCP server directly (stdio and aiohttp Streamable HTTP),
through ShadowProxy (HTTP->stdio, stdio->stdio, HTTP->HTTP), and through the
peer ``mcp-proxy``; plus the client's own ceiling against a bare-protocol
server. It prints one table and the issue's targets, and writes JSON on request.
See ``benchmarks/README.md`` for what each column means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson

from benchmarks import report, targets
from benchmarks.http_load import HttpLoad, LoadError
from benchmarks.peer import PeerUnavailable, default_venv, ensure_peer
from benchmarks.procstat import Sample, peak_rss_mib
from benchmarks.stdio_load import StdioLoad, StdioLoadError
from benchmarks.targets import Launcher, Target, TargetError
from benchmarks.ws_load import WsLoad, WsLoadError

Setup = Callable[[Launcher], AbstractAsyncContextManager[Target]]


@dataclass(frozen=True)
class RowSpec:
    """One kind of row: a name, the direct row it is compared to, and how to bring its target up."""

    name: str
    baseline: str
    setup: Setup | None
    concurrencies: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Settings:
    warmup: float
    duration: float
    concurrencies: tuple[int, ...]
    only: str | None
    repeat: int
    peer: bool
    peer_venv: Path


VARIANTS = ("rules", "sqlite", "redis", "tapes")
"""Rows whose ratio is against the memory-store, empty-chain proxy row: the cost of each feature."""


def specs(settings: Settings, peer: Setup | None) -> list[RowSpec]:
    high = (max(settings.concurrencies),)
    rules, sqlite, redis, tapes = (partial(targets.proxy_http, upstream="stdio", options=name) for name in VARIANTS)
    return [
        RowSpec("client ceiling (raw HTTP)", report.DIRECT_HTTP, partial(targets.http_server, mode="raw-http"), high),
        RowSpec(report.DIRECT_HTTP, report.DIRECT_HTTP, partial(targets.http_server, mode="http")),
        RowSpec(report.DIRECT_STDIO, report.DIRECT_STDIO, targets.stdio_server),
        RowSpec("bare relay HTTP->stdio", report.DIRECT_HTTP, targets.bare_http),
        RowSpec("bare relay stdio->stdio", report.DIRECT_STDIO, targets.bare_stdio),
        RowSpec("bare relay HTTP->HTTP", report.DIRECT_HTTP, targets.bare_http_http),
        RowSpec(report.PROXY_HTTP_STDIO, report.DIRECT_HTTP, partial(targets.proxy_http, upstream="stdio")),
        RowSpec(report.PROXY_STDIO_STDIO, report.DIRECT_STDIO, targets.proxy_stdio),
        RowSpec("shadowproxy HTTP->HTTP", report.DIRECT_HTTP, partial(targets.proxy_http, upstream="http")),
        RowSpec("shadowproxy WebSocket->stdio", report.DIRECT_HTTP, targets.proxy_ws),
        RowSpec(report.PROXY_HTTP_STDIO + ", 100 rules", report.PROXY_HTTP_STDIO, rules, high),
        RowSpec(report.PROXY_HTTP_STDIO + ", SQLite store", report.PROXY_HTTP_STDIO, sqlite, high),
        RowSpec(report.PROXY_HTTP_STDIO + ", Redis store", report.PROXY_HTTP_STDIO, redis, high),
        RowSpec(report.PROXY_HTTP_STDIO + ", recording tapes", report.PROXY_HTTP_STDIO, tapes, high),
        RowSpec(report.PEER, report.DIRECT_HTTP, peer),
    ]


async def measure(spec: RowSpec, concurrency: int, launcher: Launcher, settings: Settings) -> report.RowResult:
    """Bring the target up, warm it, measure one window, and take it down."""
    row = report.RowResult(spec.name, spec.baseline, concurrency)
    assert spec.setup is not None
    async with spec.setup(launcher) as target:
        if target.url is not None and target.url.startswith("ws://"):
            load: HttpLoad | StdioLoad | WsLoad = WsLoad(target.url, concurrency)
        elif target.url is not None:
            load = HttpLoad(target.url, concurrency)
        else:
            assert target.argv is not None
            stderr = launcher.log(f"stdio-{spec.name.replace(' ', '_').replace('>', '')}").open("ab")
            load = StdioLoad(target.argv, concurrency, stderr=stderr, cwd=str(launcher.workdir))
        try:
            await load.start()
            roots, front = ([load.pid], load.pid) if isinstance(load, StdioLoad) else (target.roots, target.front)
            await asyncio.sleep(settings.warmup)
            load.recorder.reset()
            before, client_before = Sample.take(roots), time.process_time()
            await asyncio.sleep(settings.duration)
            summary = load.recorder.summary()
            after, client_cpu = Sample.take(roots), time.process_time() - client_before
            row.peak_rss_mib = peak_rss_mib(front) if front is not None else float("nan")
        finally:
            await load.stop()
            if isinstance(load, StdioLoad):
                load.stderr.close()
    row.requests, row.errors, row.seconds = summary.requests, summary.errors, summary.seconds
    row.rps, row.p50_ms, row.p90_ms, row.p99_ms = summary.rps, summary.p50_ms, summary.p90_ms, summary.p99_ms
    row.cpu_s_per_1k = after.since(before) / summary.requests * 1000 if summary.requests else float("nan")
    row.client_cpu_pct = 100 * client_cpu / summary.seconds
    row.first_error = load.recorder.first_error
    if summary.requests == 0:
        row.status = f"failed: no request completed ({row.first_error})"
    return row


async def attempt(spec: RowSpec, concurrency: int, launcher: Launcher, settings: Settings) -> report.RowResult:
    """One measurement, or a row that says why it has none."""
    print(f"... {spec.name}, {concurrency} client(s)", file=sys.stderr, flush=True)
    try:
        return await measure(spec, concurrency, launcher, settings)
    except (TargetError, LoadError, StdioLoadError, WsLoadError, OSError, TimeoutError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return report.RowResult(spec.name, spec.baseline, concurrency, status=f"failed: {reason}")


def better(old: report.RowResult | None, new: report.RowResult) -> report.RowResult:
    """The run with more requests/s: on a shared machine, the less disturbed one."""
    if old is None or (new.status == "ok" and (old.status != "ok" or new.rps > old.rps)):
        return new
    return old


async def run(settings: Settings) -> list[report.RowResult]:
    """Measure every selected row; with ``repeat`` > 1, in rounds, so each row's tries are spread over time."""
    peer_setup: Setup | None = None
    peer_reason = "skipped (--no-peer)"
    if settings.peer:
        try:
            command = await ensure_peer(settings.peer_venv)
        except PeerUnavailable as exc:
            peer_reason = f"unavailable: {exc}"
        else:
            peer_setup = partial(targets.peer_http, peer_command=command)
    plan = [
        (spec, concurrency)
        for spec in specs(settings, peer_setup)
        if not settings.only or settings.only.lower() in spec.name.lower()
        for concurrency in spec.concurrencies or settings.concurrencies
    ]
    best: dict[tuple[str, int], report.RowResult] = {}
    with tempfile.TemporaryDirectory(prefix="shadowproxy-bench-") as workdir:
        launcher = Launcher(Path(workdir))
        for _ in range(settings.repeat):
            for spec, concurrency in plan:
                key = (spec.name, concurrency)
                if spec.setup is None:
                    best[key] = report.RowResult(spec.name, spec.baseline, concurrency, status=peer_reason)
                else:
                    best[key] = better(best.get(key), await attempt(spec, concurrency, launcher, settings))
    rows = [best[(spec.name, concurrency)] for spec, concurrency in plan]
    report.compare(rows)
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s per row after 0.3 s of warm-up")
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per row (default 4)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per row (default 1)")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated client counts (default 1,16)")
    parser.add_argument("--only", help="run only the rows whose name contains this text")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure every row N times, in rounds, and keep each row's best (default 1)",
    )
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="leave out the mcp-proxy rows")
    parser.add_argument("--peer-venv", type=Path, default=default_venv(), help="where mcp-proxy is installed")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed or a row failed")
    args = parser.parse_args(argv)
    try:
        args.concurrencies = tuple(sorted({int(part) for part in args.concurrency.split(",")}))
    except ValueError:
        parser.error(f"--concurrency: expected numbers separated by commas, got {args.concurrency!r}")
    if not args.concurrencies or min(args.concurrencies) < 1:
        parser.error("--concurrency: every client count must be at least 1")
    if args.quick:
        args.duration, args.warmup = 1.0, 0.3
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be positive and --warmup not negative")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(
        args.warmup, args.duration, args.concurrencies, args.only, args.repeat, args.peer, args.peer_venv
    )
    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    try:
        import uvloop
    except ImportError:
        rows = asyncio.run(run(settings))
    else:
        rows = uvloop.run(run(settings))
    found = report.checks(rows, max(settings.concurrencies))
    print(report.table(rows))
    print()
    print(report.check_lines(found))
    if args.json is not None:
        document = {
            "started": started.isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            },
            "settings": {
                "warmup_s": settings.warmup,
                "duration_s": settings.duration,
                "repeat": settings.repeat,
                "payload_bytes": 64,
            },
            "rows": [row.to_dict() for row in rows],
            "checks": [{"target": c.target, "measured": c.measured, "met": c.met} for c in found],
        }
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        print(f"\nwrote {args.json}")
    failed = any(row.status.startswith("failed") for row in rows)
    missed = any(check.met is False for check in found)
    return 1 if args.strict and (failed or missed) else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
