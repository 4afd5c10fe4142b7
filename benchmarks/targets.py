"""What the load client is pointed at: the fast servers, ShadowProxy, and the peer, each started and stopped here.

Every setup is an async context manager yielding a :class:`Target`. A process
started here runs in its own session (process group) with its output in a log
file, and is stopped with its whole group when the row ends: nothing outlives
the row that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import features

FASTSERVER = Path(__file__).resolve().with_name("fastserver.py")
BARE_RELAY = Path(__file__).resolve().with_name("bare_relay.py")
OTLP_SINK = Path(__file__).resolve().with_name("otlp_sink.py")


class TargetError(Exception):
    """A target that did not come up: its command exited, or its port never answered."""


@dataclass
class Target:
    """An HTTP endpoint (``url``) or a command to launch over stdio (``argv``), and the pids it runs as."""

    url: str | None = None
    argv: list[str] | None = None
    roots: list[int] = field(default_factory=list)
    front: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Headers the load client sends with every request (a bearer token)."""


def server_argv(mode: str, *extra: str) -> list[str]:
    return [sys.executable, str(FASTSERVER), mode, *extra]


def shadowproxy_argv() -> list[str]:
    beside = Path(sys.executable).with_name("shadowproxy")
    found = str(beside) if beside.exists() else shutil.which("shadowproxy")
    if found is None:
        raise TargetError("the shadowproxy command is not installed (pip install -e .)")
    return [found]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Launcher:
    """Starts the processes of one run, each logging to ``workdir``, and stops them all."""

    def __init__(
        self, workdir: Path, proxy_prefix: Sequence[str] = (), start_seconds: float = 30.0, slowdown: float = 1.0
    ) -> None:
        self.workdir = workdir
        self.processes: list[asyncio.subprocess.Process] = []
        self.proxy_prefix = list(proxy_prefix)
        """Put before every ``shadowproxy run`` command line (``valgrind ...``); the servers run as they are."""
        self.start_seconds = start_seconds
        self.slowdown = slowdown
        """How many times slower than natively the prefix makes the proxy (:func:`benchmarks.features.section`)."""

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    @contextlib.asynccontextmanager
    async def process(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> AsyncIterator[asyncio.subprocess.Process]:
        with self.log(name).open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                start_new_session=True,
            )
        try:
            yield process
        finally:
            await stop_group(process)

    async def wait_http(
        self, name: str, process: asyncio.subprocess.Process, port: int, path: str, seconds: float = 30.0
    ) -> None:
        """Wait (bounded) until ``GET path`` on ``port`` gets any HTTP answer."""
        for _ in range(int(seconds * 100)):
            if process.returncode is not None:
                tail = self.log(name).read_text(errors="replace")[-2000:]
                raise TargetError(f"{name} exited with {process.returncode}:\n{tail}")
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.write(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (path.encode(), port))
            status = await reader.readline()
            writer.close()
            if status.startswith(b"HTTP/1.1 200") or (status.startswith(b"HTTP/") and path == "/mcp"):
                return
            await asyncio.sleep(0.01)
        raise TargetError(f"{name} did not answer on port {port} within {seconds:.0f} s")


async def stop_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group this harness started, then SIGKILL it if it lingers."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


@contextlib.asynccontextmanager
async def http_server(launcher: Launcher, mode: str) -> AsyncIterator[Target]:
    """The fast server behind aiohttp (``http``) or a bare protocol (``raw-http``)."""
    port = free_port()
    async with launcher.process(mode, server_argv(mode, "--port", str(port))) as process:
        await launcher.wait_http(mode, process, port, "/mcp")
        yield Target(url=f"http://127.0.0.1:{port}/mcp", roots=[process.pid], front=process.pid)


@contextlib.asynccontextmanager
async def stdio_server(launcher: Launcher) -> AsyncIterator[Target]:
    yield Target(argv=server_argv("stdio"))


@contextlib.asynccontextmanager
async def proxy_http(launcher: Launcher, upstream: str, options: str = "") -> AsyncIterator[Target]:
    """``shadowproxy run`` in front of ``upstream``: ``stdio`` (a child it spawns) or ``http``.

    ``options`` picks a variant: ``sqlite`` or ``redis`` (that session store), ``rules`` (100 rules), ``tapes``
    (every session recorded).
    """
    async with contextlib.AsyncExitStack() as stack:
        roots: list[int] = []
        if upstream == "stdio":
            spec = " ".join(server_argv("stdio"))
        else:
            server = await stack.enter_async_context(http_server(launcher, "http"))
            assert server.url is not None
            spec, roots = server.url, server.roots
        port = free_port()
        argv = [*launcher.proxy_prefix, *shadowproxy_argv(), "run", "--upstream", spec, "--port", str(port)]
        argv += ["--log-level", "warning", *variant(launcher, options)]
        name = f"shadowproxy-http-{upstream}{'-' + Path(options).stem if options else ''}"
        process = await stack.enter_async_context(launcher.process(name, argv))
        await launcher.wait_http(name, process, port, "/healthz", launcher.start_seconds)
        yield Target(url=f"http://127.0.0.1:{port}/mcp", roots=[process.pid, *roots], front=process.pid)


@contextlib.asynccontextmanager
async def proxy_ws(launcher: Launcher) -> AsyncIterator[Target]:
    """``shadowproxy run`` in front of the fast stdio server, driven over its WebSocket endpoint (``/ws``)."""
    async with proxy_http(launcher, upstream="stdio") as target:
        assert target.url is not None
        base = target.url.removeprefix("http://").split("/", 1)[0]
        yield Target(url=f"ws://{base}/ws", roots=target.roots, front=target.front)


def variant(launcher: Launcher, options: str) -> list[str]:
    if options == "sqlite":
        return ["--store", f"sqlite:///{launcher.workdir / 'bench-sessions.db'}"]
    if options == "redis":
        return ["--store", f"redis://127.0.0.1:6379/0?prefix=shadowproxy-bench-{os.getpid()}:"]
    if options == "rules":
        rules = launcher.workdir / "bench-rules.yaml"
        lines = ["rules:"]
        for index in range(100):
            lines += [f"  - id: rule-{index}", f"    match: {{tool: 'tool_{index}_*'}}", "    action: block"]
        rules.write_text("\n".join(lines) + "\n")
        return ["--rules", str(rules)]
    if options == "tapes":
        return ["--record", str(launcher.workdir / "bench-tapes")]
    if options.startswith("config:"):
        return ["--config", options.removeprefix("config:")]
    return []


@contextlib.asynccontextmanager
async def proxy_stdio(launcher: Launcher) -> AsyncIterator[Target]:
    """``shadowproxy stdio -- <server>``, launched by the load client itself."""
    yield Target(argv=[*shadowproxy_argv(), "stdio", "--log-level", "warning", "--", *server_argv("stdio")])


@contextlib.asynccontextmanager
async def proxy_stdio_http(launcher: Launcher) -> AsyncIterator[Target]:
    """``shadowproxy stdio --upstream <URL>``: the stdio-to-HTTP bridge in front of the aiohttp fast server."""
    async with http_server(launcher, "http") as server:
        assert server.url is not None
        argv = [*shadowproxy_argv(), "stdio", "--log-level", "warning", "--upstream", server.url]
        yield Target(argv=argv, roots=server.roots)


@contextlib.asynccontextmanager
async def bare_http(launcher: Launcher) -> AsyncIterator[Target]:
    """The bare aiohttp relay in front of one fast stdio server: the ceiling of an HTTP->stdio hop."""
    port = free_port()
    argv = [sys.executable, str(BARE_RELAY), "http", "--port", str(port), "--", *server_argv("stdio")]
    async with launcher.process("bare-http", argv) as process:
        await launcher.wait_http("bare-http", process, port, "/mcp")
        yield Target(url=f"http://127.0.0.1:{port}/mcp", roots=[process.pid], front=process.pid)


@contextlib.asynccontextmanager
async def bare_http_http(launcher: Launcher) -> AsyncIterator[Target]:
    """The bare relay in front of the fast HTTP server: the ceiling of an HTTP->HTTP hop."""
    async with http_server(launcher, "http") as server:
        assert server.url is not None
        port = free_port()
        argv = [sys.executable, str(BARE_RELAY), "http-http", "--port", str(port), "--upstream", server.url]
        async with launcher.process("bare-http-http", argv) as process:
            await launcher.wait_http("bare-http-http", process, port, "/mcp")
            url = f"http://127.0.0.1:{port}/mcp"
            yield Target(url=url, roots=[process.pid, *server.roots], front=process.pid)


@contextlib.asynccontextmanager
async def bare_stdio(launcher: Launcher) -> AsyncIterator[Target]:
    """The bare byte relay in front of the fast stdio server: the ceiling of a stdio->stdio hop."""
    yield Target(argv=[sys.executable, str(BARE_RELAY), "stdio", "--", *server_argv("stdio")])


@contextlib.asynccontextmanager
async def proxy_feature(launcher: Launcher, key: str) -> AsyncIterator[Target]:
    """The HTTP->stdio proxy with one feature of :mod:`benchmarks.features` configured (``--config``)."""
    feature = features.BY_KEY[key]
    missing = feature.missing()
    if missing is not None:
        raise TargetError(missing)
    async with contextlib.AsyncExitStack() as stack:
        roots: list[int] = []
        sink = None
        if key.startswith("tracing"):
            port = free_port()
            process = await stack.enter_async_context(
                launcher.process("otlp-sink", [sys.executable, str(OTLP_SINK), "--port", str(port)])
            )
            await launcher.wait_http("otlp-sink", process, port, "/v1/traces")
            sink, roots = f"http://127.0.0.1:{port}/v1/traces", [process.pid]
        config = features.write_config(key, launcher.workdir, sink, launcher.slowdown)
        target = await stack.enter_async_context(proxy_http(launcher, "stdio", f"config:{config}"))
        yield Target(url=target.url, roots=[*target.roots, *roots], front=target.front, headers=feature.headers())
