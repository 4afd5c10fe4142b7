"""Real processes for the tests: the proxy through its CLI, and SDK servers over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
SDK_SERVER = REPO / "tests" / "servers" / "sdk_server.py"
STARTUP = 30.0
POLL = 0.02
# The proxies the tests start inherit SHADOWPROXY_FAST_PATH (.ci/run runs the HTTP tests with it off too).
FAST_PATH = os.environ.get("SHADOWPROXY_FAST_PATH", "1").strip().lower() not in ("0", "false", "no", "off")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def listening(port: int) -> bool:
    """Whether something accepts a connection on ``port`` of 127.0.0.1 now."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


def sdk_server_command() -> list[str]:
    return [sys.executable, str(SDK_SERVER)]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


async def until(condition, what: str, limit: float = STARTUP) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` (a no-argument callable or coroutine function) until it is true, or fail after ``limit``."""
    for _ in range(int(limit / POLL)):
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(POLL)
    raise AssertionError(f"gave up waiting for {what}")


class Process:
    """A child process whose stderr goes to a file the test can read."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def spawn(
        self, *argv: str, env: dict[str, str] | None = None, stdin: int | None = None, cwd: Path = REPO
    ) -> None:
        self._log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdin=stdin, stdout=self._log, stderr=self._log, env=env or child_env(), cwd=cwd
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait(self, limit: float = STARTUP) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), limit)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._log.close()


class ProxyProcess(Process):
    """``shadowproxy run`` on a free port; ``url`` is its MCP endpoint."""

    url: str = ""
    base: str = ""

    async def start(self, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> ProxyProcess:
        await self.spawn(sys.executable, "-m", "shadowproxy", "run", "--port", "0", *args, env=env, cwd=cwd)
        found: list[str] = []

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"the proxy exited with {self.proc.returncode}:\n{self.log()}")
            match = re.search(r"serving \S+ at (http://\S+)", self.log())
            if match:
                found.append(match.group(1))
            return bool(found)

        await until(ready, "the proxy to listen")
        self.url = found[0]
        self.base = self.url.rsplit("/", 1)[0] if self.url.count("/") > 3 else self.url
        self.base = re.match(r"http://[^/]+", self.url).group(0)  # type: ignore[union-attr]
        return self


class HttpServerProcess(Process):
    """The SDK test server over Streamable HTTP on a free port."""

    url: str = ""

    async def start(self) -> HttpServerProcess:
        port = free_port()
        await self.spawn(*sdk_server_command(), "--http", str(port))
        self.url = f"http://127.0.0.1:{port}/mcp"

        async def up() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"the server exited:\n{self.log()}")
            try:
                async with aiohttp.ClientSession() as client, client.get(self.url.replace("/mcp", "/")) as _:
                    return True
            except aiohttp.ClientError:
                return False

        await until(up, "the HTTP test server")
        return self
