"""Three instances on one Redis behind HAProxy (issue 26, item 3), driven by the official SDK client.

HAProxy (Debian's package) runs deploy/haproxy/haproxy.cfg as deploy/haproxy/run.sh does: round robin per
request, no affinity, checks on /readyz as HAProxy sends them by default. One setup serves every phase in turn:
sessions rotating over the instances (a stdio and an HTTP upstream), a GET stream and a progress stream, then
under load from retrying clients an instance SIGKILLed, Redis restarted, and an instance SIGTERMed. The figures
are printed (``pytest -s``)."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
import redis.asyncio as aioredis
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from shadowproxy.cluster.wire import Keys
from tests.redis_server import RedisServer
from tests.support import (
    REPO,
    HttpServerProcess,
    Process,
    ProxyProcess,
    child_env,
    free_port,
    listening,
    sdk_server_command,
    until,
)

CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
SERVED = re.compile(r" shadowproxy/(\w+) \S+ (\d{3}) .*\"(\w+) (\S+) HTTP")
CALL_TIMEOUT = 30.0
MAX_ATTEMPTS = 30
WORKERS = {"stdio": 3, "http": 2}
PREFIX = "shadowproxy:"  # the store's key prefix (owners() reads the session and owner keys under it)

pytestmark = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is not installed (apt-get install haproxy)"
)


class HAProxy(Process):
    """``haproxy -db`` on deploy/haproxy/haproxy.cfg in front of ``backends`` (named a, b, c)."""

    async def start(self, backends: list[ProxyProcess]) -> str:
        port = free_port()
        names = {f"BACKEND_{name}": p.base.removeprefix("http://") for name, p in zip("ABC", backends, strict=True)}
        await self.spawn("haproxy", "-db", "-f", str(CONFIG), env=child_env(LB_BIND=f"127.0.0.1:{port}", **names))
        base = f"http://127.0.0.1:{port}"
        await until(lambda: listening(port), "HAProxy to listen")
        return base

    def served(self) -> Counter[tuple[str, str, str]]:
        """(server, method, path) of every request HAProxy logged as answered 2xx."""
        return Counter(
            (m.group(1), m.group(3), m.group(4))
            for m in map(SERVED.search, self.log().splitlines())
            if m and m.group(2).startswith("2")
        )


def test_the_config_and_the_script_check() -> None:
    backends = {"BACKEND_A": "127.0.0.1:8766", "BACKEND_B": "[::1]:8767", "BACKEND_C": "localhost:8768"}
    env = child_env(LB_BIND="127.0.0.1:8765", **backends)
    done = subprocess.run(["haproxy", "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    script = CONFIG.parent / "run.sh"
    assert os.access(script, os.X_OK)
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def text_of(result: Any) -> str:
    return result.content[0].text  # type: ignore[no-any-return]


class Retrying(httpx2.AsyncBaseTransport):
    """What a client that retries does at the HTTP level: a POST whose connection failed, or that the balancer
    answered 502/503 (no instance, or the one it reached went away), is sent again, with its session id."""

    RETRY_STATUS = frozenset({502, 503})

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.failed = 0
        self.errors: list[str] = []
        self.session: str | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        for attempt in range(MAX_ATTEMPTS):
            try:
                response = await self.inner.handle_async_request(request)
            except httpx2.TransportError as exc:
                if request.method != "POST":
                    raise
                self.errors.append(type(exc).__name__)
            else:
                if request.method != "POST" or response.status_code not in self.RETRY_STATUS:
                    self.session = response.headers.get("mcp-session-id", self.session)
                    return response
                await response.aclose()
                self.errors.append(f"HTTP {response.status_code}")
            self.failed += 1
            await asyncio.sleep(0.05 * (attempt + 1))
        raise httpx2.ConnectError(f"gave up after {MAX_ATTEMPTS} attempts")

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Worker:
    """One SDK client session calling ``echo`` in a loop; a call that fails is retried until it is answered."""

    url: str
    name: str
    acks: list[tuple[float, int]] = field(default_factory=list)
    failed: int = 0
    retried: int = 0
    errors: list[str] = field(default_factory=list)
    http: Retrying = field(default_factory=Retrying)

    async def run(self, stop: asyncio.Event) -> None:
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with (
            httpx2.AsyncClient(transport=self.http, timeout=timeout) as http,
            Client(streamable_http_client(self.url, http_client=http), mode="legacy") as client,
        ):
            number = 0
            while not stop.is_set():
                text = f"{self.name} {number}"
                failed_before = self.http.failed
                for attempt in range(MAX_ATTEMPTS):
                    try:
                        result = await asyncio.wait_for(client.call_tool("echo", {"text": text}), CALL_TIMEOUT)
                        if not result.is_error:
                            break
                        self.errors.append(text_of(result))
                    except Exception as exc:
                        self.errors.append(repr(exc)[:200])
                    self.failed += 1
                    await asyncio.sleep(0.05 * (attempt + 1))
                else:
                    raise AssertionError(f"{self.name}: {text!r} failed {MAX_ATTEMPTS} times: {self.errors[-3:]}")
                assert text_of(result) == text
                self.retried += attempt > 0 or self.http.failed > failed_before
                self.acks.append((time.monotonic(), number))
                number += 1

    def since(self, moment: float) -> list[float]:
        return [at for at, _ in self.acks if at > moment]

    def longest_wait(self, moment: float) -> float:
        """The longest this session went without an answer after ``moment`` (its calls follow each other)."""
        times = [moment, *self.since(moment)]
        return max(later - earlier for earlier, later in itertools.pairwise(times))


@dataclass
class Load:
    workers: list[Worker]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(worker.run(self.stop)) for worker in self.workers]  # noqa: TID251 - test
        await until(lambda: all(len(w.acks) >= 3 for w in self.workers) or self.check(), "every session to be served")

    def check(self) -> bool:
        for task in self.tasks:
            if task.done():
                task.result()
        return False

    async def answered_after(self, moment: float, count: int = 3) -> None:
        """Every session has ``count`` answers after ``moment``."""
        await until(lambda: self.check() or all(len(w.since(moment)) >= count for w in self.workers), "answers", 90)

    def failures(self) -> dict[str, int]:
        """Failed attempts so far, by worker: calls answered with an error plus POSTs the transport sent again."""
        return {w.name: w.failed + w.http.failed for w in self.workers}

    def figures(self) -> dict[str, int]:
        return {
            "served": sum(len(w.acks) for w in self.workers),
            "failed": sum(self.failures().values()),
            "retried": sum(w.retried for w in self.workers),
        }

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def owners(server: RedisServer) -> dict[str, str]:
    """The owner instance of each active stdio session, as Redis says: its owner key once it was taken over,
    else the owner in its record."""
    store = aioredis.Redis.from_url(server.url)
    try:
        found = {}
        async for key in store.scan_iter("shadowproxy:session:*"):
            fields = await store.hgetall(key)
            if fields.get(b"state") == b"active" and fields.get(b"upstream") == b"stdio":
                session = key.decode().rsplit(":", 1)[1]
                claimed = await store.get(f"shadowproxy:owner:{session}")
                found[session] = claimed.decode() if claimed else orjson.loads(fields[b"record"])["owner"]
        return found
    finally:
        await store.aclose()


async def test_three_instances_behind_haproxy(  # type: ignore[no-untyped-def]
    start_instances, redis_server: RedisServer, http_server: HttpServerProcess, tmp_path: Path
) -> None:
    began = time.monotonic()
    upstreams = {"stdio": shlex.join(sdk_server_command()), "http": http_server.url}
    # A short shutdown_timeout bounds any drain that something would hold (GET streams are ended at its start).
    instances = await start_instances(upstreams, extra="shutdown_timeout: 3\n")
    by_name = dict(zip("abc", instances, strict=True))
    balancer = HAProxy(tmp_path / "haproxy.log")
    base = await balancer.start(instances)
    report: dict[str, Any] = {}
    workers = [Worker(f"{base}/mcp/{kind}", f"{kind}-{n}") for kind, count in WORKERS.items() for n in range(count)]
    try:
        # Sessions rotate: every call of one session may land on any instance.
        for mount in ("stdio", "http"):
            async with Client(f"{base}/mcp/{mount}", mode="legacy") as client:
                for index in range(6):
                    assert text_of(await client.call_tool("echo", {"text": f"{mount} {index}"})) == f"{mount} {index}"
            await until(
                lambda mount=mount: (
                    {s for s, m, p in balancer.served() if m == "POST" and p == f"/mcp/{mount}"} == set("abc")
                ),
                f"{mount} calls on every instance",
                10,
            )
        # A GET stream and a progress stream through the balancer.
        for mount in ("stdio", "http"):
            changed = asyncio.Event()

            async def notified(message: Any, changed: asyncio.Event = changed) -> None:
                if getattr(getattr(message, "root", message), "method", None) == "notifications/tools/list_changed":
                    changed.set()

            steps: list[float] = []

            async def stepped(progress: float, total: float | None, message: str | None, steps=steps) -> None:  # type: ignore[no-untyped-def]
                steps.append(progress)

            async with Client(f"{base}/mcp/{mount}", mode="legacy", message_handler=notified) as client:
                assert text_of(await client.call_tool("changed", {})) == "scheduled"
                await asyncio.wait_for(changed.wait(), 15)
                result = await client.call_tool(
                    "progress",
                    {"steps": 3, "pause": 0.05},
                    progress_callback=stepped,
                )
                assert text_of(result) == "done 3" and steps == [1, 2, 3]
        # The notifications came on GET streams the balancer carried (logged when the client closed them).
        await until(
            lambda: {p for _, m, p in balancer.served() if m == "GET"} >= {"/mcp/stdio", "/mcp/http"},
            "the GET streams in HAProxy's log",
            10,
        )
        report["served_by_instance"] = dict(Counter(server for server, _, _ in balancer.served().elements()))
        load = Load(workers)
        try:
            await load.start()
            sessions = {w.http.session: w.name for w in workers if w.name.startswith("stdio")}

            async def event(name: str, act: Callable[[], Awaitable[object]]) -> dict[str, Any]:
                """Do ``act`` under load; what it cost: failed attempts by session, takeovers, time to recover."""
                failures, takeovers = load.failures(), takeovers_logged()
                errors = {w.name: w.failed for w in workers}
                began = time.monotonic()
                await act()
                await load.answered_after(began)
                failed = {n: count - failures[n] for n, count in load.failures().items() if count > failures[n]}
                figures = {
                    "failed_attempts": sum(failed.values()),
                    "sessions_with_failures": sorted(failed),
                    "sessions_with_errors": sorted(w.name for w in workers if w.failed > errors[w.name]),
                    "sessions_taken_over": takeovers_logged() - takeovers,
                    "seconds_to_recover": round(max(w.since(began)[0] for w in workers) - began, 2),
                    # A SIGTERMed instance's sessions stall when it exits, seconds after the event began.
                    "longest_wait": round(max(w.longest_wait(began) for w in workers), 2),
                    "seconds": round(time.monotonic() - began, 1),
                }
                report[name] = figures
                return figures

            def takeovers_logged() -> int:
                return sum(proxy.log().count("took over session") for proxy in instances)

            # SIGKILL the instance that owns the most stdio sessions: those are taken over, the rest carry on.
            await until(lambda: _covers(owners(redis_server), sessions), "every stdio session to reach Redis")
            owned = await owners(redis_server)
            victim = Counter(owned[s] for s in sessions).most_common(1)[0][0]
            its = {sessions[s] for s in sessions if owned[s] == victim}

            async def kill() -> None:
                by_name[victim].signal(signal.SIGKILL)
                await by_name[victim].wait()

            figures = await event("sigkill", kill)
            figures.update(instance=victim, stdio_sessions_it_owned=len(its))
            assert figures["sessions_taken_over"] == len(its), figures
            # Sessions the lost instance did not own see no error (a request it was serving is sent again).
            assert not {w.name for w in workers if w.failed} - its, figures

            async def restart_redis() -> None:
                redis_server.kill()
                redis_server.start()

            # Redis restarted, empty, with two instances up: each says again what it holds, so no session moves
            # (requests forwarded while Redis was away may fail and are sent again).
            figures = await event("redis_restart_two_up", restart_redis)
            assert figures["sessions_taken_over"] == 0, figures
            await until(lambda: _covers(owners(redis_server), sessions), "the sessions to be written again")
            # For one heartbeat_ttl after Redis came back no owner is judged lost, so a SIGTERM within that window
            # waits it out too (a run whose SIGTERM came 0.7 s after the restart took 5.9 s): measured apart.
            await until(lambda: _settled(redis_server), "the settling window after the restart to close")

            # SIGTERM one of the two left: what it was serving is answered; its stdio sessions move to the last one.
            stopped = next(name for name in by_name if name != victim)
            owned = await owners(redis_server)
            its = {sessions[s] for s in sessions if owned.get(s) == stopped}

            async def stop() -> None:
                before = takeovers_logged()
                by_name[stopped].signal(signal.SIGTERM)
                assert await by_name[stopped].wait() == 0
                # A request forwarded to it while it drained is answered there: its sessions move at the next one.
                await until(lambda: takeovers_logged() - before >= len(its), "its sessions to be taken over")

            figures = await event("sigterm", stop)
            figures.update(instance=stopped, stdio_sessions_it_owned=len(its))
            assert figures["sessions_taken_over"] == len(its), figures
            # No call of a session it did not own is answered with an error. Such a session's client may have to
            # send a POST again (counted in sessions_with_failures): the drain closes the instance's idle
            # keep-alive connections, and HAProxy then closes a client connection bound to one.
            assert not set(figures["sessions_with_errors"]) - its, figures

            # Redis restarted, empty, under load: the last instance serves on, and writes its sessions again.
            figures = await event("redis_restart", restart_redis)
            assert figures["sessions_taken_over"] == 0 and not figures["sessions_with_failures"], figures
            await until(lambda: _covers(owners(redis_server), sessions), "the sessions to be written again")
        finally:
            await load.close()
        load.check()
        # Every session carried on: each acknowledged answer was its own, in order, on the session it started.
        for worker in workers:
            assert [number for _, number in worker.acks] == list(range(len(worker.acks)))
        report["load"] = load.figures()
        report["seconds"] = round(time.monotonic() - began, 1)
    finally:
        report["errors"] = {w.name: w.errors + w.http.errors for w in workers if w.errors or w.http.errors}
        print("\nbalancer figures:", report)
        await balancer.stop()


async def _settled(server: RedisServer) -> bool:
    store = aioredis.Redis.from_url(server.url)
    try:
        return not await store.exists(Keys(PREFIX).settling)
    finally:
        await store.aclose()


async def _covers(found: Awaitable[dict[str, str]], sessions: dict[str | None, str]) -> bool:
    return set(sessions) <= set(await found)
