"""Boot time: ``python -m benchmarks.boot [--runs N]`` from the repository root.

How long a freshly started ``shadowproxy`` takes before a client can use it, in front of the fast stdio server:

* ``run``: from spawning ``shadowproxy run`` to its port accepting a connection, and to the answer of the first
  ``initialize`` POST (which also starts the upstream child when none was started ahead);
* ``stdio``: from spawning ``shadowproxy stdio -- <server>`` to the answer of ``initialize`` on its stdout, which
  is what an MCP client that launches the proxy waits for;
* ``python``: the interpreter alone (``python -c pass``), the floor under both.

Each figure is the median of ``--runs`` starts, after one start of each kind that is not counted: the proxy runs
as an installed one does, from the bytecode caches (``__pycache__``), which that first start writes where they are
missing (an environment that sets ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module at every start,
about a third of the time to an open port). Wall clock is noisy on a loaded machine; the proxy's CPU seconds
(from ``/proc``, 10 ms ticks) much less so. ``python -X importtime -m shadowproxy stdio ...`` shows where the
import time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

import orjson

from benchmarks.procstat import cpu_seconds
from benchmarks.targets import free_port, server_argv, shadowproxy_argv

INITIALIZE = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "boot-bench", "version": "1"},
        },
    }
)
DEADLINE = 30.0
ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group started here, SIGKILL it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def connect(port: int, process: subprocess.Popen[bytes]) -> socket.socket:
    """Poll the port until it accepts (every millisecond: the figure is a start-up of a few hundred)."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"shadowproxy exited with {process.returncode}")
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            time.sleep(0.001)
    raise RuntimeError(f"port {port} did not open within {DEADLINE} s")


def initialize_http(sock: socket.socket, port: int) -> bytes:
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nContent-Length: {len(INITIALIZE)}\r\n"
        "Connection: close\r\n\r\n"
    )
    sock.sendall(head.encode() + INITIALIZE)
    received = b""
    while b'"result"' not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    if b'"result"' not in received:
        raise RuntimeError(f"no initialize result: {received[:300]!r}")
    return received


def boot_run() -> tuple[float, float, float]:
    """Seconds from spawning ``shadowproxy run`` to an open port and to the first ``initialize`` answer, and the
    CPU seconds the proxy had spent when its port opened."""
    port = free_port()
    argv = [*shadowproxy_argv(), "run", "--upstream", " ".join(server_argv("stdio")), "--port", str(port)]
    start = time.perf_counter()
    process = subprocess.Popen(
        [*argv, "--log-level", "warning"],
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with connect(port, process) as sock:
            opened = time.perf_counter() - start
            cpu = cpu_seconds(process.pid)
            initialize_http(sock, port)
            answered = time.perf_counter() - start
    finally:
        stop(process)
    return opened, answered, cpu


def boot_stdio() -> tuple[float, float]:
    """Seconds from spawning ``shadowproxy stdio -- <server>`` to the ``initialize`` answer on its stdout, and the
    proxy's CPU seconds by then (its child's not counted)."""
    argv = [*shadowproxy_argv(), "stdio", "--log-level", "warning", "--", *server_argv("stdio")]
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(INITIALIZE + b"\n")
        process.stdin.flush()
        line = process.stdout.readline()
        answered = time.perf_counter() - start
        cpu = cpu_seconds(process.pid)
        if b'"result"' not in line:
            raise RuntimeError(f"no initialize result: {line[:300]!r}")
    finally:
        stop(process)
    return answered, cpu


def boot_python() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="starts per figure; the median is printed")
    args = parser.parse_args(argv)
    boot_run(), boot_stdio()  # not counted: writes the bytecode caches an installed proxy has
    runs = [boot_run() for _ in range(args.runs)]
    stdio_runs = [boot_stdio() for _ in range(args.runs)]
    rows = {
        "python -c pass": [boot_python() for _ in range(args.runs)],
        "run: open port": [opened for opened, _, _ in runs],
        "run: CPU by the open port": [cpu for _, _, cpu in runs],
        "run: initialize answered": [answered for _, answered, _ in runs],
        "stdio: initialize answered": [answered for answered, _ in stdio_runs],
        "stdio: CPU by the answer": [cpu for _, cpu in stdio_runs],
    }
    load = os.getloadavg()[0]
    print(f"boot, median of {args.runs} starts (load average {load:.1f}):")
    for name, values in rows.items():
        print(f"  {name:28} {statistics.median(values) * 1000:7.0f} ms   (min {min(values) * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
