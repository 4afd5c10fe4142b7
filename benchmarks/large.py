"""Large messages: ``python -m benchmarks.large [--duration S] [--json PATH]`` from the repository root.

What a large answer costs the proxy: a 53 KB ``tools/list`` (200 tools), a 50 KB and a 1 MB ``tools/call`` result,
each from ``benchmarks/largeserver.py``, fetched directly over stdio and through ShadowProxy (stdio->stdio and
HTTP->stdio), one request in flight. The figure to read is the proxy's CPU per request (user + system, from
``/proc``), which a loaded machine disturbs far less than requests per second; the direct row's column is the
server's own. Messages of this size are per-byte work (reading, decoding, the nesting check, writing), so the
proxy's share of the bytes' cost is what the table shows; ``benchmarks/README.md`` reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from benchmarks.procstat import cpu_seconds
from benchmarks.targets import Launcher, free_port, shadowproxy_argv, stop_group

LARGESERVER = Path(__file__).resolve().with_name("largeserver.py")
PAYLOADS: dict[str, tuple[str, dict[str, object]]] = {
    "tools/list, 200 tools (53 KB)": ("tools/list", {}),
    "tools/call, 50 KB result": ("tools/call", {"name": "blob", "arguments": {"size": 50_000}}),
    "tools/call, 1 MB result": ("tools/call", {"name": "blob", "arguments": {"size": 1_000_000}}),
}
LINE_LIMIT = 1 << 24
WARMUP = 10
VERSION = "2025-11-25"

Ask = Callable[[bytes], Awaitable[bytes]]


@dataclass(frozen=True)
class Row:
    target: str
    payload: str
    requests: int
    per_second: float
    answer_bytes: int
    cpu_us: float
    """CPU microseconds per request of the process that relays (the server's own for the direct row)."""


def request(request_id: int, method: str, params: dict[str, object]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def initialize(request_id: int) -> bytes:
    params = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "bench-large", "version": "1"}}
    return request(request_id, "initialize", params)


INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


async def measure(target: str, payload: str, ask: Ask, pid: int, duration: float, ids: list[int]) -> Row:
    """Ask for ``payload`` in a closed loop for ``duration`` seconds; ``ids`` numbers the requests."""
    method, params = PAYLOADS[payload]

    async def one() -> int:
        ids[0] += 1
        answer = await ask(request(ids[0], method, params))
        if b'"result"' not in answer[:200] and b'"result"' not in answer:
            raise RuntimeError(f"{target}: no result for {payload}: {answer[:200]!r}")
        return len(answer)

    for _ in range(WARMUP):
        await one()
    count = size = 0
    cpu = cpu_seconds(pid)
    start = time.perf_counter()
    end = start + duration
    while time.perf_counter() < end:
        size = await one()
        count += 1
    elapsed = time.perf_counter() - start
    spent = cpu_seconds(pid) - cpu
    return Row(target, payload, count, count / elapsed, size, spent / count * 1e6)


@contextlib.asynccontextmanager
async def stdio(argv: list[str]) -> AsyncIterator[tuple[Ask, asyncio.subprocess.Process]]:
    """A process spoken to over its stdin and stdout, initialized; its ask sends one line and reads one."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        limit=LINE_LIMIT,
        start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None
    writer, reader = process.stdin, process.stdout

    async def ask(body: bytes) -> bytes:
        writer.write(body + b"\n")
        await writer.drain()
        return await reader.readline()

    try:
        await ask(initialize(0))
        writer.write(INITIALIZED + b"\n")
        yield ask, process
    finally:
        writer.close()
        await stop_group(process)


class HttpClient:
    """One keep-alive connection and one session on a Streamable HTTP endpoint; JSON or SSE answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host
        self.session = b""

    async def post(self, body: bytes) -> tuple[bytes, bytes]:
        head = (
            b"POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Accept: application/json, text/event-stream\r\n%sContent-Length: %d\r\n\r\n"
        ) % (self.host.encode(), self.session, len(body))
        self.writer.write(head + body)
        answer_head = await self.reader.readuntil(b"\r\n\r\n")
        lowered = answer_head.lower()
        if b"transfer-encoding: chunked" in lowered:
            chunks = []
            while size := int((await self.reader.readline()).strip(), 16):
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readexactly(2)
            answer = b"".join(chunks)
        else:
            length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
            answer = await self.reader.readexactly(length)
        if b"text/event-stream" in lowered:
            answer = b"".join(line[5:].strip() for line in answer.split(b"\n") if line.startswith(b"data:"))
        return answer_head, answer

    async def ask(self, body: bytes) -> bytes:
        return (await self.post(body))[1]


@contextlib.asynccontextmanager
async def http(url_port: int) -> AsyncIterator[Ask]:
    reader, writer = await asyncio.open_connection("127.0.0.1", url_port, limit=LINE_LIMIT)
    client = HttpClient(reader, writer, f"127.0.0.1:{url_port}")
    try:
        head, _ = await client.post(initialize(0))
        at = head.lower().index(b"mcp-session-id:") + len(b"mcp-session-id:")
        session = head[at:].split(b"\r\n")[0].strip()
        client.session = b"Mcp-Session-Id: %s\r\n" % session
        await client.post(INITIALIZED)
        yield client.ask
    finally:
        writer.close()


def server_argv() -> list[str]:
    return [sys.executable, str(LARGESERVER)]


async def rows(duration: float, workdir: Path) -> list[Row]:
    found: list[Row] = []
    ids = [0]
    async with stdio(server_argv()) as (ask, process):
        for payload in PAYLOADS:
            found.append(await measure("direct stdio (server CPU)", payload, ask, process.pid, duration, ids))
    argv = [*shadowproxy_argv(), "stdio", "--log-level", "warning", "--", *server_argv()]
    async with stdio(argv) as (ask, process):
        for payload in PAYLOADS:
            found.append(await measure("shadowproxy stdio->stdio", payload, ask, process.pid, duration, ids))
    launcher = Launcher(workdir)
    port = free_port()
    argv = [*shadowproxy_argv(), "run", "--upstream", " ".join(server_argv()), "--port", str(port)]
    async with launcher.process("shadowproxy-large", [*argv, "--log-level", "warning"]) as process:
        await launcher.wait_http("shadowproxy-large", process, port, "/healthz")
        async with http(port) as ask:
            for payload in PAYLOADS:
                found.append(await measure("shadowproxy HTTP->stdio", payload, ask, process.pid, duration, ids))
    return found


def table(found: list[Row]) -> str:
    lines = [f"{'target':28} {'payload':32} {'req/s':>8} {'answer':>9} {'CPU us/req':>11} {'CPU ns/KB':>10}"]
    for row in found:
        per_kb = row.cpu_us * 1000 / (row.answer_bytes / 1000)
        lines.append(
            f"{row.target:28} {row.payload:32} {row.per_second:8.0f} {row.answer_bytes:9d} {row.cpu_us:11.0f}"
            f" {per_kb:10.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per row and payload")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shadowproxy-large-") as workdir:
        found = asyncio.run(rows(args.duration, Path(workdir)))
    print(f"large messages, one request in flight (load average {os.getloadavg()[0]:.1f}):")
    print(table(found))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps([asdict(row) for row in found], option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
