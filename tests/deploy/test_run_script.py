"""deploy/haproxy/run.sh as a person runs it (issue 26, item 3): started from a terminal, it serves the official SDK
client through HAProxy from three instances, and Ctrl-C (or closing its terminal) stops everything it started, each
instance drained once."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from mcp import Client

from tests.deploy.test_balancer import SERVED, text_of
from tests.support import REPO, child_env, free_port, listening, until

SCRIPT = REPO / "deploy" / "haproxy" / "run.sh"
SERVING = re.compile(r"serving (http://\S+/mcp) .* logs in (\S+)")

pytestmark = pytest.mark.skipif(
    shutil.which("haproxy") is None or shutil.which("redis-server") is None,
    reason="haproxy and redis-server are needed (apt-get install haproxy redis-server)",
)


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def four_free_ports() -> int:
    """A port whose next three are free too: the script puts the balancer on it and the instances after it."""
    for _ in range(100):
        base = free_port()
        if base + 3 < 65536 and all(bindable(base + step) for step in range(1, 4)):
            return base
    raise AssertionError("no four free ports in a row")


async def _ready(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as answer:
            return answer.status == 200
    except aiohttp.ClientError:
        return False


def _all_up(haproxy_log: Path) -> bool:
    """Every server HAProxy marked down has been marked up again since (it logs only the changes)."""
    text = haproxy_log.read_text(errors="replace")
    return all(text.count(f"shadowproxy/{n} is DOWN") <= text.count(f"shadowproxy/{n} is UP") for n in "abc")


class Script:
    """run.sh in a process group of its own, as a terminal runs a foreground job (Ctrl-C signals that group)."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, lb_port: int, redis_port: int) -> tuple[str, Path]:
        # The interpreter's own bin first: run.sh finds shadowproxy there, and the demo upstream's `python`.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
        env = child_env(LB_PORT=str(lb_port), REDIS_PORT=str(redis_port), PATH=path)
        # With the signals a terminal's job starts with: a shell cannot trap a signal ignored when it started, and
        # a test process may inherit SIGINT ignored (seen in CI: the script never heard the Ctrl-C).
        command = ["env", "--default-signal=INT,HUP", "bash", str(SCRIPT)]
        with self.output.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *command, stdout=out, stderr=out, env=env, cwd=self.output.parent, start_new_session=True
            )
        await until(lambda: SERVING.search(self.text()) or self.proc.returncode is not None, "run.sh to serve")
        found = SERVING.search(self.text())
        assert found, self.text()
        return found.group(1), Path(found.group(2))

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def signal_group(self, signum: int) -> None:
        """What a terminal sends its foreground job: SIGINT on Ctrl-C, SIGHUP when it is closed."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signum)

    async def close(self) -> None:
        """A test that failed part-way: the script's trap stops what it started; its group is killed if not."""
        if self.proc is None or self.proc.returncode is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()


@pytest_asyncio.fixture
async def script(tmp_path: Path) -> AsyncIterator[Script]:
    started = Script(tmp_path / "run.out")
    try:
        yield started
    finally:
        await started.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "terminal-closed"])
async def test_run_sh_serves_through_haproxy_and_stops_it_all(script: Script, signum: int) -> None:
    lb_port, redis_port = four_free_ports(), free_port()
    url, logs = await script.start(lb_port, redis_port)
    assert url == f"http://127.0.0.1:{lb_port}/mcp"
    # The script says where it serves once it has started the processes, not once they are ready; HAProxy takes
    # an instance out while its /readyz is 503 (its upstream starting) and back at its next check.
    for port in (lb_port + 1, lb_port + 2, lb_port + 3):
        await until(lambda port=port: _ready(port), f"the instance on {port} to be ready", 60)
    await until(lambda: _all_up(logs / "haproxy.log"), "HAProxy to have every instance up")

    def servers() -> set[str]:
        lines = (logs / "haproxy.log").read_text(errors="replace").splitlines()
        return {m.group(1) for m in map(SERVED.search, lines) if m and m.group(3) == "POST" and m.group(4) == "/mcp"}

    async with Client(url, mode="legacy") as client:
        for index in range(6):
            assert text_of(await client.call_tool("echo", {"text": f"call {index}"})) == f"call {index}"
    # One session's calls, round robin over the three instances.
    await until(lambda: servers() == {"a", "b", "c"}, "calls on every instance", 10)

    script.signal_group(signum)
    assert script.proc is not None
    assert await asyncio.wait_for(script.proc.wait(), 60) == 0, script.text()
    for name in "ABC":
        log = (logs / f"instance-{name}.log").read_text(errors="replace")
        # One signal each, so each instance drained rather than exiting at a second one.
        assert len(re.findall(r"SIG\w+: shutting down gracefully", log)) == 1, log[-2000:]
        assert "exiting now" not in log, log[-2000:]
    for port in (lb_port, lb_port + 1, lb_port + 2, lb_port + 3, redis_port):
        assert not await listening(port), f"port {port} still open after {signal.Signals(signum).name}"
