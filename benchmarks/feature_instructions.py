"""What a feature costs in instructions: ``python -m benchmarks.feature_instructions [--only KEYS]``.

:mod:`benchmarks.feature_cost` compares seconds, and on a shared two-core machine a window's req/s moves by 20-40 %
either way, more than the 3 % a configured-but-not-matching feature may cost. Instructions do not move with the
machine: each proxy (the plain HTTP->stdio one, then one per feature) runs under ``valgrind --tool=callgrind``
with collection off, is warmed by the load, and then counts the instructions of a window of echo calls
(``callgrind_control -i on`` ... ``-i off``, then a dump). The figure is instructions per request and its ratio to
the plain proxy's. The servers run natively; only the proxy process is counted, every thread of it, user space
only (what the kernel does for its reads and writes is not in the figure), less what it spends in an idle window
of the same length right after (its timers).

A window under valgrind is about fifty times slower than a native one, so ``--concurrency`` clients keep
more requests per loop turn than natively; every row runs at the same concurrency, so the ratios compare alike.
The plain proxy is measured first and again last: the two figures show how repeatable a row is.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks import features, targets
from benchmarks.feature_cost import chosen
from benchmarks.http_load import HttpLoad

TOTALS = re.compile(rb"^totals: (\d+)", re.MULTILINE)
START_SECONDS = 300.0
"""How long a proxy under valgrind may take to answer /healthz (tens of seconds on a slow machine)."""
SLOWDOWN = 50.0
"""About how many times slower a proxy runs under callgrind: a feature that batches by the clock (the tapes) is
configured with batches as many times longer, to hold as many messages as natively."""


async def control(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "callgrind_control", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise targets.TargetError(f"callgrind_control {' '.join(args)}: {err.decode(errors='replace')}")


def dumped(dumps: Path, pid: int, number: int) -> int:
    """The instructions of dump ``number`` (1, 2, ...) that ``callgrind_control -d`` made ``pid`` write."""
    path = dumps / f"callgrind.{pid}.{number}"
    found = TOTALS.search(path.read_bytes()) if path.exists() else None
    if found is None:
        raise targets.TargetError(f"no callgrind dump {path}")
    return int(found.group(1))


async def stop_counting(pid: str) -> None:
    """Stop counting and dump what was counted (the next count starts from zero)."""
    await control("-i", "off", pid)
    await control("-d", pid)


async def count(target: targets.Target, dumps: Path, concurrency: int, warmup: float, seconds: float) -> float:
    """Instructions per request of one window on a proxy started under callgrind, less what it spends idle.

    Timers (a rules file's poll, the sessions' sweep, the tapes' ticks) run by the clock, and under valgrind a
    second holds about fifty times fewer requests than natively: their cost, counted in an idle window as long as
    the loaded one right after it, is taken out.
    """
    assert target.url is not None and target.front is not None
    pid = str(target.front)
    load = HttpLoad(target.url, concurrency, headers=target.headers)
    await load.start()
    try:
        await asyncio.sleep(warmup)
        await control("-i", "on", pid)
        load.recorder.reset()
        await asyncio.sleep(seconds)
        requests = load.recorder.summary().requests
        await stop_counting(pid)
    finally:
        await load.stop()
    await control("-i", "on", pid)
    await asyncio.sleep(seconds)
    await stop_counting(pid)
    if not requests:
        raise targets.TargetError("no request completed in the window")
    busy, idle = dumped(dumps, target.front, 1), dumped(dumps, target.front, 2)
    return (busy - idle) / requests


async def row(launcher: targets.Launcher, dumps: Path, key: str | None, args: argparse.Namespace) -> tuple[float, int]:
    """Instructions per request of the plain proxy (``key`` None) or of one feature's, and the pid of its dumps."""
    if key is None:
        proxy = targets.proxy_http(launcher, upstream="stdio")
    else:
        proxy = targets.proxy_feature(launcher, key)
    async with proxy as target:
        assert target.front is not None
        return await count(target, dumps, args.concurrency, args.warmup, args.seconds), target.front


async def main(args: argparse.Namespace) -> int:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    picked = chosen(args.only)
    if not picked:
        print(f"no feature matches {args.only!r} (keys: {', '.join(features.BY_KEY)})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="shadowproxy-instructions-") as folder:
        dumps = args.dumps or Path(folder)
        dumps.mkdir(parents=True, exist_ok=True)
        prefix = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={dumps.resolve()}/callgrind.%p",
        ]
        launcher = targets.Launcher(Path(folder), proxy_prefix=prefix, start_seconds=START_SECONDS, slowdown=SLOWDOWN)
        print(f"{'row':<52} {'instr/request':>13}  {'ratio':>6}  pid of the dumps")
        plain, pid = await row(launcher, dumps, None, args)
        print(f"{'plain proxy':<52} {plain:13,.0f}  {1:6.3f}  {pid}", flush=True)
        for feature in picked:
            missing = feature.missing()
            if missing is not None:
                print(f"{feature.row:<52} not measured: {missing}")
                continue
            spent, pid = await row(launcher, dumps, feature.key, args)
            print(f"{feature.row:<52} {spent:13,.0f}  {spent / plain:6.3f}  {pid}", flush=True)
        spent, pid = await row(launcher, dumps, None, args)
        print(f"{'plain proxy, again':<52} {spent:13,.0f}  {spent / plain:6.3f}  {pid}")
    budget = 1 + features.NOT_MATCHING_BUDGET
    print(f"(instructions of the proxy process per echo call, {args.concurrency} clients; budget {budget:.2f})")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.feature_instructions", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", help="comma-separated feature keys or parts of row names (default: every one)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before counting")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds counted")
    parser.add_argument(
        "--dumps", type=Path, help="keep the callgrind dumps here (callgrind.PID.1: the loaded window, .2: idle)"
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
