"""What a feature costs, measured in pairs: ``python -m benchmarks.feature_cost [--only tapes] [--rounds 9]``.

The e2e table measures each row once per round and keeps the best try; on a shared two-core machine two windows
a minute apart differ by more than the 3 % a feature may cost. Here the plain HTTP->stdio proxy and the proxy with
the feature run side by side, both started and warmed once, and the load moves between them: every round is a
window on the plain one and then one on the other, and each feature's figure is the median over rounds of the
ratio within a round, so what the machine does meanwhile moves both windows of a pair alike. The CPU the proxy
process spends per request (``/proc``, user + system, every thread) is given beside req/s; it moves less.

Each feature's rounds run one after another (``--rounds`` of them); features are those of
:mod:`benchmarks.features` whose key or row name holds an ``--only`` part (default: every one).

``--pin`` gives the proxies the first CPU to themselves (``taskset``, every thread) and puts this load client and
the servers on the others, so that the scheduler no longer moves the three between the cores within a window.
The proxy is then the bottleneck only if it keeps its CPU busy: the ``busy`` column is its CPU seconds per second
in the feature's windows, and a row well below 1.0 measured the load client, not the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import features, targets
from benchmarks.http_load import HttpLoad
from benchmarks.procstat import cpu_seconds, tree

PROXY_CPU = 0


async def window(target: targets.Target, concurrency: int, seconds: float) -> tuple[float, float, float]:
    """(req/s, µs of proxy CPU per request, proxy CPU seconds per second) of one window on a running proxy, after a
    quarter second of warm-up."""
    assert target.url is not None and target.front is not None
    load = HttpLoad(target.url, concurrency, headers=target.headers)
    await load.start()
    try:
        await asyncio.sleep(0.25)
        load.recorder.reset()
        before = cpu_seconds(target.front)
        await asyncio.sleep(seconds)
        summary = load.recorder.summary()
        spent = cpu_seconds(target.front) - before
    finally:
        await load.stop()
    return summary.rps, spent / max(summary.requests, 1) * 1e6, spent / seconds


def unpin_servers(target: targets.Target) -> None:
    """Move the servers a pinned proxy started (its children inherit its CPU) to the load client's CPUs."""
    assert target.front is not None
    for pid in tree(target.front)[1:]:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(task), os.sched_getaffinity(0))


async def cost(
    feature: features.Feature, launcher: targets.Launcher, rounds: int, concurrency: int, seconds: float
) -> str:
    async with contextlib.AsyncExitStack() as stack:
        # Both proxies run throughout, warmed once; only the load moves between them.
        base = await stack.enter_async_context(targets.proxy_http(launcher, upstream="stdio"))
        with_it = await stack.enter_async_context(targets.proxy_feature(launcher, feature.key))
        for target in (base, with_it):
            if launcher.proxy_prefix:
                unpin_servers(target)
            await window(target, concurrency, 1.0)
        pairs = []
        for _ in range(rounds):
            pairs.append((await window(base, concurrency, seconds), await window(with_it, concurrency, seconds)))
    rps = statistics.median(on[0] / off[0] for off, on in pairs)
    cpu = statistics.median(on[1] / off[1] for off, on in pairs)
    spread = sorted(round(on[0] / off[0], 2) for off, on in pairs)
    plain_rps = statistics.median(off[0] for off, _ in pairs)
    busy = statistics.median(on[2] for _, on in pairs)
    return f"{feature.row:<52} {rps:6.3f}  {cpu:6.3f}x   {plain_rps:8,.0f}  {busy:4.2f}   {spread}"


def chosen(only: str | None) -> list[features.Feature]:
    if not only:
        return list(features.FEATURES)
    parts = [part.strip().lower() for part in only.split(",") if part.strip()]
    return [f for f in features.FEATURES if any(part == f.key or part in f.row.lower() for part in parts)]


async def main(only: str | None, rounds: int, concurrency: int, seconds: float, pin: bool) -> int:
    picked = chosen(only)
    if not picked:
        print(f"no feature matches {only!r} (keys: {', '.join(features.BY_KEY)})", file=sys.stderr)
        return 2
    prefix: list[str] = []
    if pin:
        others = os.sched_getaffinity(0) - {PROXY_CPU}
        if not others:
            print("--pin needs two CPUs", file=sys.stderr)
            return 2
        os.sched_setaffinity(0, others)
        prefix = ["taskset", "-c", str(PROXY_CPU)]
    print(f"{'feature':<52} {'req/s':>6}  {'CPU/req':>7}   {'plain/s':>8}  busy   req/s ratio of each round")
    with tempfile.TemporaryDirectory(prefix="shadowproxy-feature-cost-") as workdir:
        launcher = targets.Launcher(Path(workdir), proxy_prefix=prefix)
        for feature in picked:
            missing = feature.missing()
            if missing is not None:
                print(f"{feature.row:<52} not measured: {missing}")
                continue
            print(await cost(feature, launcher, rounds, concurrency, seconds), flush=True)
    print(f"(median over {rounds} rounds of the feature's window against the plain proxy's just before it)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feature_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated feature keys or parts of row names (default: every one)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--pin", action="store_true", help="the proxies on CPU 0, the load and servers elsewhere")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.only, args.rounds, args.concurrency, args.seconds, args.pin)))
