"""Small network helpers for scripts/conformance.sh, so the script needs neither curl nor nc.

    python scripts/conformance/netutil.py free-port
    python scripts/conformance/netutil.py wait http://127.0.0.1:8931/mcp --timeout 30 [--status 200] [--pid PID]
    python scripts/conformance/netutil.py warm http://127.0.0.1:8931/mcp --timeout 60

`wait` polls until the URL answers (any HTTP status, or exactly `--status`), and fails early, naming
the URL, when `--pid` is given and that process has exited.

`warm` sends one 2026-07-28 `server/discover` and waits for its answer, then as long again. A proxy that bridges
to a per-session stdio server starts a process for the first pooled session and, beside it, a spare for the next
client capabilities; both take seconds to start. Some of the suite's checks read a stream for 600 ms only, so
the suite starts once the first answered and the spare has had as long: a cold start is measured by
benchmarks/, not by conformance.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request

DISCOVER = {
    "jsonrpc": "2.0",
    "id": "warm",
    "method": "server/discover",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "conformance-warm", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    },
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait(url: str, timeout: float, want: int | None, pid: int | None) -> str | None:
    """None once `url` answers as wanted; otherwise why it never did."""
    deadline = time.monotonic() + timeout
    status: int | None = None
    while time.monotonic() < deadline:
        status = _status(url)
        if status is not None and (want is None or status == want):
            return None
        if pid is not None and not _alive(pid):
            return f"{url}: the server process {pid} exited before it answered"
        time.sleep(0.1)
    return f"{url}: no {'answer' if want is None else f'HTTP {want}'} within {timeout:g}s (last status {status})"


def warm(url: str, timeout: float) -> str | None:
    """None once `url` answered a `server/discover` and as long again has passed; otherwise why it did not."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "server/discover",
    }
    request = urllib.request.Request(url, data=json.dumps(DISCOVER).encode(), headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        return f"{url}: server/discover got HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url}: server/discover failed: {error}"
    time.sleep(time.monotonic() - started)
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point: `free-port` prints a port; `wait` exits 1 with a message if the URL never answers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("free-port")
    waiter = commands.add_parser("wait")
    waiter.add_argument("url")
    waiter.add_argument("--timeout", type=float, default=30.0)
    waiter.add_argument("--status", type=int)
    waiter.add_argument("--pid", type=int)
    warmer = commands.add_parser("warm")
    warmer.add_argument("url")
    warmer.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.command == "free-port":
        print(free_port())
        return 0
    if args.command == "warm":
        problem = warm(args.url, args.timeout)
    else:
        problem = wait(args.url, args.timeout, args.status, args.pid)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
