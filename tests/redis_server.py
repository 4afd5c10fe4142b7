"""A private ``redis-server`` for tests: free port, no persistence, killed and restarted on demand.

    with RedisServer() as server:          # or server = RedisServer(); server.start(); ...; server.stop()
        url = server.url                   # redis://127.0.0.1:<port>/0
        server.kill()                      # SIGKILL, as a crash would
        server.start()                     # again, on the same port (empty: nothing is saved)

Start-up waits for the server's own "Ready to accept connections" line rather
than polling, so nothing here sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from types import TracebackType
from typing import NoReturn

READY = "Ready to accept connections"


class RedisUnavailable(RuntimeError):
    """No ``redis-server`` binary, or it would not start."""


def missing(reason: object) -> NoReturn:
    """Skip the test without Redis, or fail it when ``SHADOWPROXY_REQUIRE_REDIS=1`` (CI) says one must be had."""
    import pytest

    if os.environ.get("SHADOWPROXY_REQUIRE_REDIS") == "1":
        pytest.fail(f"Redis is required (SHADOWPROXY_REQUIRE_REDIS=1): {reason}")
    pytest.skip(str(reason))


def free_port() -> int:
    """A TCP port nothing listens on right now (another process may still take it; start() retries)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server --save "" --appendonly no`` child process bound to 127.0.0.1."""

    def __init__(self, port: int | None = None, *, binary: str | None = None, start_timeout: float = 10.0) -> None:
        self.binary = binary or shutil.which("redis-server")
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[str] | None = None
        self._log: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        """Start (or restart, on the same port) and return once the server accepts connections."""
        if self.binary is None:
            raise RedisUnavailable("redis-server is not installed")
        if self.running:
            return self
        for _attempt in range(3):
            if self._spawn():
                return self
            self.port = free_port()
        raise RedisUnavailable("redis-server did not start:\n" + "\n".join(self._log[-20:]))

    def _spawn(self) -> bool:
        command = [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        ready = threading.Event()
        threading.Thread(target=self._drain, args=(process, ready), daemon=True).start()
        if ready.wait(self.start_timeout) and process.poll() is None:
            self._process = process
            return True
        self._terminate(process, signal.SIGKILL)
        return False

    def _drain(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        # Keep reading so the pipe never fills; the first READY line releases start().
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                self._log.append(line.rstrip())
                if READY in line:
                    ready.set()
        ready.set()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; everything it held is gone."""
        self._stop(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server politely (SIGTERM), falling back to SIGKILL."""
        self._stop(signal.SIGTERM)

    def _stop(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is not None:
            self._terminate(process, sig)

    @staticmethod
    def _terminate(process: subprocess.Popen[str], sig: signal.Signals) -> None:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
