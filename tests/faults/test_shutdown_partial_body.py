"""SIGTERM while a request's body is still arriving (issue 18, item 6): the request gets an answer (served, or 503)
instead of a silent close, on the proxy's own connection (a Content-Length body) and on aiohttp's (a chunked
one), and shutdown does not wait out ``shutdown_timeout`` for a body that never comes."""

from __future__ import annotations

import asyncio
import shlex
import signal

import orjson
import pytest

from tests.security.helpers import INIT
from tests.support import ProxyProcess, sdk_server_command

from .test_pipelined_memory import open_connections

SHUTDOWN_TIMEOUT = 30
EXIT_WITHIN = 15


def partial_request(proxy: ProxyProcess, framing: str) -> bytes:
    """The head of an initialize and the first half of its body."""
    host = proxy.base.removeprefix("http://")
    path = proxy.url.removeprefix(proxy.base)
    body = orjson.dumps(INIT)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
    if framing == "content-length":
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2]
    return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + b"%x\r\n" % len(body) + body[: len(body) // 2]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_sigterm_answers_a_request_whose_body_is_still_arriving(start_proxy, framing: str) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy(
        "--upstream", shlex.join(sdk_server_command()), "--shutdown-timeout", str(SHUTDOWN_TIMEOUT)
    )
    host, port = proxy.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(partial_request(proxy, framing))
        await writer.drain()
        for _ in range(100):
            if await open_connections(proxy) == 2:
                break
            await asyncio.sleep(0.05)
        # Time for the proxy to read what came (the head and half the body); nothing observable says it did.
        await asyncio.sleep(0.5)
        proxy.signal(signal.SIGTERM)
        async with asyncio.timeout(EXIT_WITHIN):
            answer = await reader.read()
    finally:
        writer.close()
    assert answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 503")), answer[:300]
    if answer.startswith(b"HTTP/1.1 503"):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"retry-after: 1" in head.lower() and b"connection: close" in head.lower()
        assert orjson.loads(body)["error"]["message"] == "the proxy is shutting down"
    # Well before shutdown_timeout: nothing else was in flight.
    assert await proxy.wait(EXIT_WITHIN) == 0, proxy.log()[-2000:]
