"""A client that pipelines calls with large answers and never reads them (issue 18, item 2): the proxy holds about
one answer for it, not all of them, and closes its connection after ``limits.idle_timeout``."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from pathlib import Path

import aiohttp
import orjson
import yaml

from tests.security.helpers import open_session, post
from tests.support import REPO, ProxyProcess

BIG = REPO / "tests" / "servers" / "big.py"
SIZE = 4 * 1024 * 1024
CALLS = 20
IDLE = 3
MIB = 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def open_connections(proxy: ProxyProcess) -> int:
    """The proxy's count of client connections, this scrape's own included."""
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/metrics") as response:
        text = await response.text()
    match = re.search(r"^shadowproxy_active_connections (\S+)$", text, re.MULTILINE)
    assert match is not None, text[:500]
    return int(float(match.group(1)))


def call(request_id: int) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "big", "arguments": {"size": SIZE}},
    }


def pipelined(proxy: ProxyProcess, session: str) -> bytes:
    host = proxy.base.removeprefix("http://")
    path = proxy.url.removeprefix(proxy.base)
    requests = []
    for number in range(CALLS):
        body = orjson.dumps(call(100 + number))
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
            f"Mcp-Session-Id: {session}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return b"".join(requests)


def read_all(sock: socket.socket) -> int:
    """Bytes the proxy still delivers until it ends the connection (EOF or reset)."""
    total = 0
    sock.settimeout(30)
    try:
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
    except ConnectionResetError:
        pass
    return total


async def test_a_client_that_pipelines_and_never_reads_costs_the_proxy_about_one_answer(  # type: ignore[no-untyped-def]
    start_proxy, tmp_path: Path
) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(yaml.safe_dump({"limits": {"idle_timeout": IDLE}}))
    proxy: ProxyProcess = await start_proxy("--config", str(config), "--upstream", f"{sys.executable} {BIG}")
    session = await open_session(proxy.url)
    # One answer read whole first: the baseline holds what serving one costs.
    status, payload, _ = await post(proxy.url, call(1), **{"Mcp-Session-Id": session, "Accept": "application/json"})
    assert status == 200 and len(payload["result"]["content"][0]["text"]) == SIZE
    before = rss_kib(proxy.pid)

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = proxy.base.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    try:
        sock.sendall(pipelined(proxy, session))
        # Watch the proxy's memory while it has the connection (and a while longer, were it never to let go).
        peak, closed = before, False
        for _ in range(int((IDLE * 5) / 0.1)):
            peak = max(peak, rss_kib(proxy.pid))
            if await open_connections(proxy) == 1:
                closed = True
                break
            await asyncio.sleep(0.1)
        after = rss_kib(proxy.pid)
        print(f"\nproxy RSS: {before // MIB} MiB before, {peak // MIB} MiB peak, {after // MIB} MiB after")
        # Unbounded, the proxy buffers all 20 answers (80 MiB and more); bounded, about one answer.
        assert peak - before < 40 * MIB, f"RSS grew {(peak - before) // MIB} MiB for a client that never reads"
        assert closed, "the proxy kept the connection of a client that did not read for limits.idle_timeout"
        assert read_all(sock) < CALLS * SIZE
    finally:
        sock.close()
    assert "did not read" in proxy.log()
    # Everyone else is still served.
    status, payload, _ = await post(proxy.url, call(2), **{"Mcp-Session-Id": session, "Accept": "application/json"})
    assert status == 200 and len(payload["result"]["content"][0]["text"]) == SIZE
