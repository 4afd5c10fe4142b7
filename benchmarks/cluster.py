"""The cluster's cost: 1, 2 and 3 instances behind one Redis against one instance with the memory store,
and the latency a cross-instance forward adds.

    python -m benchmarks.cluster                 # about 40 s
    python -m benchmarks.cluster --quick         # smoke run
    python -m benchmarks.cluster --json out.json

Throughput rows: ``--concurrency`` simulated clients (one keep-alive connection and one session each) are
spread evenly over the instances, as a balancer without affinity spreads new sessions; each client then
stays on the instance its session began on, so every request is served locally (the common case).
The forward row: one session begun on instance a, then sequential echo calls sent to a (local) and to b,
which forwards each through Redis to a's child and relays the answer. Every process shares this machine's
cores with the load client and Redis, so more instances cannot mean more throughput on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson

from benchmarks.http_load import HttpLoad, _sse_data
from benchmarks.recorder import INITIALIZED, Recorder, call_body, initialize_body, is_echo
from benchmarks.targets import Launcher, free_port, server_argv, shadowproxy_argv
from tests.redis_server import RedisServer

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@contextlib.asynccontextmanager
async def instances(launcher: Launcher, count: int, store: str, cluster: bool = True) -> AsyncIterator[list[str]]:
    """``count`` proxies in front of the fast stdio server, sharing ``store``; their MCP URLs."""
    async with contextlib.AsyncExitStack() as stack:
        urls = []
        for index in range(count):
            port = free_port()
            config = launcher.workdir / f"cluster-{index}.yaml"
            config.write_text(f"cluster: {{instance_id: i{index}, enabled: {str(cluster).lower()}}}\n")
            argv = [*shadowproxy_argv(), "run", "--config", str(config), "--upstream", " ".join(server_argv("stdio"))]
            argv += ["--port", str(port), "--store", store, "--log-level", "warning"]
            name = f"cluster-{count}-{index}-{int(time.time() * 1000)}"
            process = await stack.enter_async_context(launcher.process(name, argv))
            await launcher.wait_http(name, process, port, "/healthz")
            urls.append(f"http://127.0.0.1:{port}/mcp")
        yield urls


async def throughput(urls: list[str], concurrency: int, warmup: float, duration: float) -> dict[str, float]:
    recorder = Recorder()
    loads = []
    for index, url in enumerate(urls):
        share = concurrency // len(urls) + (index < concurrency % len(urls))
        load = HttpLoad(url, share)
        load.recorder = recorder
        loads.append(load)
    await asyncio.gather(*(load.start() for load in loads))
    await asyncio.sleep(warmup)
    recorder.reset()
    await asyncio.sleep(duration)
    summary = recorder.summary()
    await asyncio.gather(*(load.stop() for load in loads))
    return {"rps": summary.rps, "p50_ms": summary.p50_ms, "p99_ms": summary.p99_ms, "errors": summary.errors}


async def forward_latency(urls: list[str], calls: int) -> dict[str, float]:
    """Median and p99 of sequential calls to the owner (a) and through another instance (b)."""
    async with aiohttp.ClientSession() as http:
        async with http.post(urls[0], data=initialize_body(1), headers=HEADERS) as response:
            session = response.headers["Mcp-Session-Id"]
            await response.read()
        headers = {**HEADERS, "Mcp-Session-Id": session}
        async with http.post(urls[0], data=INITIALIZED, headers=headers) as response:
            await response.read()
        figures: dict[str, float] = {}
        for label, url in (("local", urls[0]), ("forwarded", urls[1])):
            latencies = []
            for request_id in range(2, 2 + calls):
                began = time.perf_counter()
                async with http.post(url, data=call_body(request_id), headers=headers) as response:
                    body = await response.read()
                    if response.content_type == "text/event-stream":
                        body = _sse_data(body)
                latencies.append((time.perf_counter() - began) * 1000)
                if not is_echo(body, request_id):
                    raise RuntimeError(f"{label}: a wrong answer: {body[:200]!r}")
            latencies.sort()
            figures[f"{label}_p50_ms"] = statistics.median(latencies)
            figures[f"{label}_p99_ms"] = latencies[int(0.99 * (len(latencies) - 1))]
        figures["added_p50_ms"] = figures["forwarded_p50_ms"] - figures["local_p50_ms"]
        return figures


async def run(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as workdir, RedisServer() as redis:
        launcher = Launcher(Path(workdir))
        rows = [("1 instance, memory store", 1, "memory://", False)]
        rows += [("1 instance, Redis store, no cluster", 1, redis.url, False)]
        rows += [(f"{n} instance(s), Redis cluster", n, redis.url, True) for n in (1, 2, 3)]
        for label, count, store, cluster in rows:
            async with instances(launcher, count, store, cluster) as urls:
                row = await throughput(urls, args.concurrency, args.warmup, args.duration)
            results[label] = row
            print(f"{label:32} {row['rps']:9.0f} req/s  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms"
                  f"  errors {row['errors']}", flush=True)  # fmt: skip
        async with instances(launcher, 2, redis.url) as urls:
            forward = await forward_latency(urls, args.calls)
        results["cross-instance forward"] = forward
        print(
            f"{'cross-instance forward':32} local p50 {forward['local_p50_ms']:.2f} ms, forwarded p50 "
            f"{forward['forwarded_p50_ms']:.2f} ms (+{forward['added_p50_ms']:.2f} ms), "
            f"p99 {forward['local_p99_ms']:.2f} / {forward['forwarded_p99_ms']:.2f} ms"
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--calls", type=int, default=500, help="sequential calls per forward-latency figure")
    parser.add_argument("--quick", action="store_true", help="0.3 s warm-up, 1 s per row, 100 calls")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.duration, args.calls = 0.3, 1.0, 100
    results = asyncio.run(run(args))
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
