"""HTTP framing at the edge (issue 18, item 8): request lines of other HTTP versions, absolute-form targets and
malformed Host values are refused on the proxy's own connection and on aiohttp's alike, and each malformed
request leaves one log line with a request id (no traceback), at a bounded rate."""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

import aiohttp
import orjson
import pytest

from shadowproxy.core.logs import Throttle
from tests.support import ProxyProcess, sdk_server_command

from .helpers import INIT

CASES = [
    ("POST {path} HTTP/2.0", "{host}", 505),
    ("POST {path} HTTP/0.9", "{host}", 505),
    ("POST http://evil.example{path} HTTP/1.1", "localhost", 421),
    ("POST {path} HTTP/1.1", "[::1]evil.com", 400),
    ("POST {path} HTTP/1.1", "[::1].evil.com:80", 400),
    ("POST {path} HTTP/1.1", "localhost:abc", 400),
    ("POST {path} HTTP/1.1", "localhost:8765:80", 400),
]
CASE_IDS = ["http-2.0", "http-0.9", "absolute-form", "junk-after-ipv6", "dot-after-ipv6", "port-letters", "two-ports"]
BURST = 20


class Wire:
    """One raw connection to the proxy."""

    def __init__(self, proxy: ProxyProcess) -> None:
        self.host, port = proxy.base.removeprefix("http://").split(":")
        self.port = int(port)
        self.path = proxy.url.removeprefix(proxy.base)

    async def __aenter__(self) -> Wire:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    def request(self, line: str, host: str) -> bytes:
        body = orjson.dumps(INIT)
        line = line.format(path=self.path)
        host = host.format(host=f"{self.host}:{self.port}")
        head = f"{line}\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    async def exchange(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(data)
        await self.writer.drain()
        async with asyncio.timeout(10):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers, body

    async def via_aiohttp(self) -> None:
        """Make aiohttp's handler own the connection: it serves everything after a GET."""
        status, headers, _ = await self.exchange(
            f"GET /healthz HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        )
        assert status == 200 and "aiohttp" in headers["server"]


def json_lines(proxy: ProxyProcess) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in proxy.log().splitlines() if line.startswith("{")]


async def sessions(proxy: ProxyProcess) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/readyz") as response:
        return (await response.json())["sessions"]  # type: ignore[no-any-return]


async def start(start_proxy) -> ProxyProcess:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--log-format", "json")
    proxy.url = proxy.url.removesuffix('"}')  # found in a JSON line by a pattern made for text ones
    return proxy


@pytest.mark.parametrize("route", ["connection", "aiohttp"])
async def test_bad_heads_are_refused_with_one_log_line_each(start_proxy, route: str) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy)
    ids = []
    for (line, host, expected), name in zip(CASES, CASE_IDS, strict=True):
        async with Wire(proxy) as wire:
            if route == "aiohttp":
                await wire.via_aiohttp()
            status, headers, body = await wire.exchange(wire.request(line, host))
            assert status == expected, (name, body)
            ids.append(headers["x-request-id"])
    # A head aiohttp's parser refuses (a field name with a space): its 400, and one line instead of a traceback.
    async with Wire(proxy) as wire:
        if route == "aiohttp":
            await wire.via_aiohttp()
        good = wire.request("POST {path} HTTP/1.1", "{host}")
        status, _, _ = await wire.exchange(good.replace(b"\r\n\r\n", b"\r\nBad Field: x\r\n\r\n", 1))
        assert status == 400
    assert await sessions(proxy) == 0
    # The absolute-form target may name the proxy itself: then it is served, whatever Host says.
    async with Wire(proxy) as wire:
        line = f"POST http://{wire.host}:{wire.port}{{path}} HTTP/1.1"
        status, _, body = await wire.exchange(wire.request(line, "evil.example"))
        assert status == 200 and orjson.loads(body)["result"]["protocolVersion"]

    text = proxy.log()
    assert "Traceback" not in text, text[-3000:]
    lines = json_lines(proxy)
    refused = [entry for entry in lines if entry["level"] == "warning" and "request" in entry["message"]]
    assert len(refused) == len(CASES) + 1, refused
    assert all(entry.get("request_id") and "exception" not in entry for entry in refused), refused
    assert [entry["request_id"] for entry in refused[: len(CASES)]] == ids


async def test_a_flood_of_bad_heads_is_logged_at_a_bounded_rate(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy)
    began = asyncio.get_running_loop().time()
    for number in range(200):
        async with Wire(proxy) as wire:
            bad = wire.request("POST {path} HTTP/1.1", "localhost:abc")
            if number % 2:
                # One aiohttp's parser refuses: its traceback is throttled with the proxy's own refusals.
                bad = wire.request("POST {path} HTTP/1.1", "{host}").replace(
                    b"\r\n\r\n", b"\r\nBad Field: x\r\n\r\n", 1
                )
            status, _, _ = await wire.exchange(bad)
            assert status == 400
    spent = asyncio.get_running_loop().time() - began
    refused = [entry for entry in json_lines(proxy) if entry["level"] == "warning" and "request" in entry["message"]]
    # At most BURST lines in each 10-second window the flood touched.
    assert 1 <= len(refused) <= BURST * (int(spent / 10) + 2) and len(refused) < 200, (len(refused), spent)
    # The proxy still serves.
    async with Wire(proxy) as wire:
        status, _, _ = await wire.exchange(wire.request("POST {path} HTTP/1.1", "{host}"))
        assert status == 200


async def test_the_first_line_after_a_quiet_spell_counts_those_left_out() -> None:
    throttle = Throttle(burst=2, window=0.2)
    assert [throttle.admit() for _ in range(5)] == [0, 0, None, None, None]
    await asyncio.sleep(0.3)
    assert throttle.admit() == 3 and throttle.admit() == 0
