"""A client that never reads its answers is closed after ``limits.idle_timeout`` on aiohttp's handler as on the fast
path (issue 19, item 5): aiohttp has no write timeout of its own, so a connection it serves (every one with
``fast_path: false``, and one the fast path handed over) held such a client for ever."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import yaml

from tests.faults.test_pipelined_memory import BIG, IDLE, open_connections, pipelined
from tests.security.helpers import open_session
from tests.support import ProxyProcess


async def test_a_client_that_never_reads_a_handed_off_connection_is_closed(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "proxy.yaml"
    config.write_text(yaml.safe_dump({"limits": {"idle_timeout": IDLE}}))
    proxy: ProxyProcess = await start_proxy("--config", str(config), "--upstream", f"{sys.executable} {BIG}")
    session = await open_session(proxy.url)
    host, port = proxy.base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    try:
        # A GET first: from it on, aiohttp's own handler has the connection, whichever path the proxy runs.
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() + pipelined(proxy, session))
        closed = False
        for _ in range(int((IDLE * 5) / 0.1)):
            if await open_connections(proxy) == 1:
                closed = True
                break
            await asyncio.sleep(0.1)
        assert closed, "the proxy kept a connection on aiohttp's handler whose client did not read for idle_timeout"
    finally:
        sock.close()
    assert "did not read" in proxy.log()
