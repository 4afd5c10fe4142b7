"""Idle sessions and idle SSE streams: what each costs the proxy in memory and in tasks.

``python -m benchmarks.streams_load`` starts ``shadowproxy run`` (memory store,
the fast stdio server as one ``share: true`` child, so that the proxy's own
process is what is measured), opens N sessions (``initialize`` and
``notifications/initialized``), then N concurrent GET SSE streams, one per
session, each on its own connection, and leaves them idle. It reads the
proxy's ``VmRSS`` from ``/proc/<pid>/status`` and the task census from
``/readyz`` before, after the sessions and after the streams, and reports:

* KB per idle session and KB per idle stream (the target is under 50 KB each);
* asyncio tasks per idle stream connection (the target is 1: aiohttp's task for the connection).

The file descriptor soft limit is raised to the hard limit, since both the
harness and the proxy hold one socket per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

HERE = Path(__file__).resolve().parent
FAST_SERVER = HERE / "fastserver.py"
STARTUP = 60.0
PARALLEL = 64
"""Sessions initialized at a time: enough to be quick, few enough not to queue thousands of requests."""
TARGET_KB = 50.0
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "idle", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


@dataclass(frozen=True, slots=True)
class Reading:
    """The proxy at one moment: resident memory, live sessions, live tasks."""

    rss_kb: int
    sessions: int
    tasks: int
    census: dict[str, int]


@dataclass(frozen=True, slots=True)
class Result:
    sessions: int
    baseline: Reading
    after_sessions: Reading
    after_streams: Reading
    kb_per_session: float
    kb_per_stream: float
    tasks_per_session: float
    tasks_per_stream: float

    @property
    def within_target(self) -> bool:
        return self.kb_per_session < TARGET_KB and self.kb_per_stream < TARGET_KB


def raise_fd_limit(needed: int) -> int:
    """Lift the descriptor limit for this process and its children; fail early when it cannot reach ``needed``.

    The soft limit goes to the hard one; when that is still too few, the hard limit is raised too, which root
    may do up to ``/proc/sys/fs/nr_open``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            soft = hard = needed
        except (ValueError, OSError):
            pass  # not root, or above nr_open: the check below says so
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise SystemExit(
            f"{needed} file descriptors needed, the hard limit is {soft} (ulimit -Hn; root may raise it up to"
            " /proc/sys/fs/nr_open)"
        )
    return soft


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Proxy:
    """``shadowproxy run`` as a child process, in front of the fast server shared by every session."""

    def __init__(self, folder: Path, sessions: int) -> None:
        self.folder = folder
        self.sessions = sessions
        self.proc: asyncio.subprocess.Process | None = None
        self.log = folder / "proxy.log"
        self.url = ""
        self.base = ""

    async def start(self) -> None:
        config = {
            "upstreams": {"fast": {"command": [sys.executable, str(FAST_SERVER), "stdio"], "share": True}},
            "store": "memory://",
            "session_ttl": 86400,
            "keepalive_interval": 3600,  # idle means idle: no keep-alive writes while measuring
            # Without auth every client is the one anonymous principal; the defaults cap it at 1,000 sessions.
            "limits": {"max_sessions": self.sessions + 16, "max_sessions_per_principal": self.sessions + 16},
        }
        path = self.folder / "proxy.yaml"
        path.write_text(yaml.safe_dump(config))
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shadowproxy", "run", "--config", str(path), "--port", "0",
            stdout=asyncio.subprocess.DEVNULL, stderr=self.log.open("wb"),
        )  # fmt: skip
        async with asyncio.timeout(STARTUP):
            while True:
                match = re.search(r"serving \S+ at (http://\S+)", self.log.read_text(errors="replace"))
                if match:
                    break
                if self.proc.returncode is not None:
                    raise RuntimeError(f"the proxy exited:\n{self.log.read_text(errors='replace')}")
                await asyncio.sleep(0.05)
        self.url = match.group(1)
        self.base = re.match(r"http://[^/]+", self.url).group(0)  # type: ignore[union-attr]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def reading(self, client: aiohttp.ClientSession) -> Reading:
        async with client.get(f"{self.base}/readyz") as response:
            ready = await response.json()
        census = ready["tasks"]
        return Reading(rss_kb(self.pid), ready["sessions"], census["total"], census)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def open_session(client: aiohttp.ClientSession, url: str, gate: asyncio.Semaphore) -> str:
    async with gate:
        async with client.post(url, json=INIT, headers=MCP_HEADERS) as response:
            if response.status != 200:
                raise RuntimeError(f"initialize answered {response.status}: {await response.text()}")
            await response.read()
            session = response.headers["Mcp-Session-Id"]
        headers = {**MCP_HEADERS, "Mcp-Session-Id": session}
        async with client.post(url, json=INITIALIZED, headers=headers) as response:
            if response.status != 202:
                raise RuntimeError(f"notifications/initialized answered {response.status}")
        return session


async def open_stream(client: aiohttp.ClientSession, url: str, session: str) -> aiohttp.ClientResponse:
    headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session}
    response = await client.get(url, headers=headers)
    if response.status != 200:
        raise RuntimeError(f"GET stream answered {response.status}: {await response.text()}")
    return response


async def settle(proxy: Proxy, client: aiohttp.ClientSession) -> Reading:
    """A reading once the proxy's memory has stopped moving (persistence batches and lazy imports done)."""
    reading = await proxy.reading(client)
    for _ in range(20):
        await asyncio.sleep(0.25)
        again = await proxy.reading(client)
        if abs(again.rss_kb - reading.rss_kb) < 64 and again.tasks == reading.tasks:
            return again
        reading = again
    return reading


async def run(sessions: int) -> Result:
    raise_fd_limit(sessions + 256)
    with tempfile.TemporaryDirectory(prefix="streams-load-") as folder:
        proxy = Proxy(Path(folder), sessions)
        await proxy.start()
        streams: list[aiohttp.ClientResponse] = []
        try:
            control = aiohttp.ClientSession()
            pool = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=PARALLEL))
            holders = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            async with control, pool, holders:
                gate = asyncio.Semaphore(PARALLEL)
                # One session first, so that first-use costs (imports, the child's start) are in the baseline.
                warm = await open_session(pool, proxy.url, gate)
                await open_stream(holders, proxy.url, warm)
                baseline = await settle(proxy, control)
                ids = await asyncio.gather(*(open_session(pool, proxy.url, gate) for _ in range(sessions)))
                await pool.close()  # the sessions stay; their HTTP connections need not
                after_sessions = await settle(proxy, control)
                for start in range(0, sessions, PARALLEL):
                    batch = ids[start : start + PARALLEL]
                    streams.extend(await asyncio.gather(*(open_stream(holders, proxy.url, s) for s in batch)))
                after_streams = await settle(proxy, control)
                for stream in streams:
                    stream.close()
        finally:
            await proxy.stop()
    return Result(
        sessions=sessions,
        baseline=baseline,
        after_sessions=after_sessions,
        after_streams=after_streams,
        kb_per_session=(after_sessions.rss_kb - baseline.rss_kb) / sessions,
        kb_per_stream=(after_streams.rss_kb - after_sessions.rss_kb) / sessions,
        tasks_per_session=(after_sessions.tasks - baseline.tasks) / sessions,
        tasks_per_stream=(after_streams.tasks - after_sessions.tasks) / sessions,
    )


def report(result: Result) -> str:
    rows = [
        f"idle sessions and streams: N = {result.sessions} (proxy process only; one shared stdio child)",
        f"{'':<22}{'RSS MiB':>10}{'sessions':>10}{'tasks':>8}",
    ]
    for name, reading in (
        ("baseline (1 session)", result.baseline),
        ("+ N sessions", result.after_sessions),
        ("+ N GET streams", result.after_streams),
    ):
        rows.append(f"{name:<22}{reading.rss_kb / 1024:>10.1f}{reading.sessions:>10}{reading.tasks:>8}")
    rows.append(f"memory per idle session: {result.kb_per_session:.1f} KB (target < {TARGET_KB:.0f} KB)")
    rows.append(f"memory per idle stream:  {result.kb_per_stream:.1f} KB (target < {TARGET_KB:.0f} KB)")
    grown = growth(result.after_sessions.census, result.after_streams.census)
    rows.append("tasks the streams added: " + ", ".join(f"{name} +{count}" for name, count in grown))
    rows.append(
        f"tasks per idle session: {result.tasks_per_session:.2f}; per stream connection: {result.tasks_per_stream:.2f}"
    )
    return "\n".join(rows)


def growth(before: dict[str, int], after: dict[str, int]) -> list[tuple[str, int]]:
    """Coroutines with more live tasks in ``after``, most first."""
    grown = {name: count - before.get(name, 0) for name, count in after.items() if name != "total"}
    return sorted(((name, count) for name, count in grown.items() if count > 0), key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streams_load", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", "-n", type=int, default=2000, help="idle sessions and streams (default 2000)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a figure misses its 50 KB target")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions must be 1 or more")
    result = asyncio.run(run(args.sessions))
    print(report(result))
    if args.json is not None:
        data: dict[str, Any] = {**asdict(result), "within_target": result.within_target}
        args.json.write_text(json.dumps(data, indent=2))
    return 1 if args.strict and not result.within_target else 0


if __name__ == "__main__":
    sys.exit(main())
