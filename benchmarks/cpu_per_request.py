"""The proxy's CPU per request under load, and optionally a py-spy profile of it over the same window.

``python -m benchmarks.cpu_per_request --upstream http`` runs the aiohttp fast server, ``shadowproxy run`` in
front of it, and ``benchmarks.http_load`` at 16 clients; it prints the requests answered and the proxy's user +
system CPU per request, read from ``/proc``. CPU per request moves far less than req/s with whatever else the
machine runs, so it is the figure to compare before and after a change on a shared machine. ``--profile FILE``
records the proxy with py-spy (``pip install py-spy``) in its raw (collapsed) format and prints each file's share
of the samples.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks import procstat, targets
from benchmarks.http_load import HttpLoad


async def measure(upstream: str, clients: int, seconds: float, profile: Path | None) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as workdir:
        launcher = targets.Launcher(Path(workdir))
        async with targets.proxy_http(launcher, upstream=upstream) as target:
            assert target.url is not None and target.front is not None
            load = HttpLoad(target.url, clients)
            await load.start()
            await asyncio.sleep(1.0)
            load.recorder.reset()
            before = procstat.cpu_seconds(target.front)
            spy = None
            if profile is not None:
                argv = ["py-spy", "record", "-p", str(target.front), "-d", str(int(seconds)), "-r", "200"]
                spy = await asyncio.create_subprocess_exec(
                    *argv, "-f", "raw", "-o", str(profile), stdout=subprocess.DEVNULL
                )
            await asyncio.sleep(seconds)
            spent = procstat.cpu_seconds(target.front) - before
            answered = len(load.recorder.latencies)
            await load.stop()
            if spy is not None:
                await spy.wait()
    return answered, spent


def shares(profile: Path, top: int) -> list[tuple[str, float]]:
    """Each file's share of the samples in which it is the innermost frame."""
    counts: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        found = re.search(r"\(([^()]*):\d+\)$", stack.rsplit(";", 1)[-1])
        path = found.group(1) if found else stack.rsplit(";", 1)[-1]
        counts[
            re.sub(r".*/(site-packages|shadowproxy)/", lambda m: "" if "site" in m[1] else "shadowproxy/", path)
        ] += int(samples)
    total = sum(counts.values()) or 1
    return [(name, 100 * count / total) for name, count in counts.most_common(top)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_per_request", description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", choices=("http", "stdio"), default="http", help="the fast server's transport")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--profile", type=Path, help="record the proxy with py-spy into this file")
    args = parser.parse_args()
    if args.profile is not None and shutil.which("py-spy") is None:
        parser.error("--profile needs py-spy (pip install py-spy)")
    answered, spent = asyncio.run(measure(args.upstream, args.clients, args.seconds, args.profile))
    per_request = 1e6 * spent / max(answered, 1)
    print(f"{answered} requests in {args.seconds:.0f} s; proxy CPU {spent:.2f} s = {per_request:.1f} us a request")
    if args.profile is not None:
        for name, share in shares(args.profile, 15):
            print(f"{share:5.1f} %  {name}")


if __name__ == "__main__":
    main()
