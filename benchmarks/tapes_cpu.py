"""CPU per request of the proxy process alone, recording off against on: ``python -m benchmarks.tapes_cpu``.

Req/s moves with whatever else the machine runs; the CPU the proxy process spends per request (``/proc``,
user + system, the writer thread included) moves much less, so it is the figure to compare recording by.
Both variants run in alternation, ``--rounds`` times each, at ``--concurrency`` clients of the e2e load client;
each line is the median over rounds, and the last the median of each round's ratio of recording to off (the two
windows of a round are seconds apart: what the machine does meanwhile moves both).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from benchmarks import targets
from benchmarks.http_load import HttpLoad
from benchmarks.procstat import cpu_seconds


async def once(launcher: targets.Launcher, options: str, concurrency: int, seconds: float) -> tuple[float, float]:
    """(µs of proxy CPU per request, req/s) for one window."""
    async with targets.proxy_http(launcher, upstream="stdio", options=options) as target:
        assert target.url is not None and target.front is not None
        load = HttpLoad(target.url, concurrency)
        await load.start()
        try:
            await asyncio.sleep(0.5)
            load.recorder.reset()
            before = cpu_seconds(target.front)
            await asyncio.sleep(seconds)
            summary = load.recorder.summary()
            spent = cpu_seconds(target.front) - before
        finally:
            await load.stop()
    return spent / summary.requests * 1e6, summary.rps


async def main(rounds: int, concurrency: int, seconds: float) -> None:
    found: dict[str, list[tuple[float, float]]] = {"": [], "tapes": []}
    with tempfile.TemporaryDirectory(prefix="shadowproxy-tapes-cpu-") as workdir:
        launcher = targets.Launcher(Path(workdir))
        for _ in range(rounds):
            for options, results in found.items():
                results.append(await once(launcher, options, concurrency, seconds))
    for options, results in found.items():
        cpu = statistics.median(result[0] for result in results)
        rps = statistics.median(result[1] for result in results)
        name = "recording every session" if options else "recording off"
        print(f"{name:<24} proxy CPU {cpu:6.1f} µs/request   {rps:8,.0f} req/s   (median of {rounds})")
    pairs = list(zip(found[""], found["tapes"], strict=True))
    cpu_ratio = statistics.median(on[0] / off[0] for off, on in pairs)
    rps_ratio = statistics.median(on[1] / off[1] for off, on in pairs)
    ratios = f"{cpu_ratio:6.3f}x            {rps_ratio:8.3f}x req/s"
    print(f"{'recording / off':<24} proxy CPU {ratios} (median of the rounds)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.concurrency, args.seconds))
