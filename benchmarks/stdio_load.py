"""The stdio load client: launch the target command and pipeline echo calls over its stdin/stdout.

One process is one MCP session: ``initialize`` once, ``notifications/initialized``,
then ``concurrency`` requests kept in flight. Every reply read sends the next
request, and the replies of one read are answered with one write, from the
protocol callback: no task per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import IO, cast

import orjson

from benchmarks.recorder import INITIALIZED, TEXT, Recorder, call_body, initialize_body


class StdioLoadError(Exception):
    """The target command died or answered the handshake wrongly."""


class StdioClient(asyncio.SubprocessProtocol):
    """The load client's end of the target's pipes."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.transport: asyncio.SubprocessTransport | None = None
        self.stdin: asyncio.WriteTransport | None = None
        self.pending = b""
        self.in_flight: dict[int, int] = {}
        self.next_id = 1
        self.looping = False
        self.handshake: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.SubprocessTransport, transport)
        self.stdin = cast(asyncio.WriteTransport, self.transport.get_pipe_transport(0))

    def write(self, data: bytes) -> None:
        assert self.stdin is not None
        self.stdin.write(data)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        lines = (self.pending + data).split(b"\n")
        self.pending = lines.pop()
        if lines and not self.handshake.done():
            self.handshake.set_result(lines.pop(0))
        out = []
        now = time.perf_counter_ns()
        for line in lines:
            try:
                message = orjson.loads(line)
                if "method" in message:
                    continue  # a notification or a server request: not an answer to a call
                sent_at = self.in_flight.pop(message["id"])
                ok = message["result"]["content"][0]["text"] == TEXT
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                self.recorder.error(f"unexpected reply: {line[:200]!r}")
                continue
            if ok:
                self.recorder.latencies.append(now - sent_at)
            else:
                self.recorder.error(f"wrong echo: {line[:200]!r}")
            if self.looping:
                out.append(self._request(now))
        if out:
            self.write(b"".join(out))

    def _request(self, now: int) -> bytes:
        request_id = self.next_id
        self.next_id += 1
        self.in_flight[request_id] = now
        return call_body(request_id) + b"\n"

    def start(self, concurrency: int) -> None:
        self.looping = True
        now = time.perf_counter_ns()
        self.write(b"".join(self._request(now) for _ in range(concurrency)))

    def process_exited(self) -> None:
        assert self.transport is not None
        code = self.transport.get_returncode()
        if self.looping:
            self.recorder.error(f"the target exited mid-run with {code}")
        self.looping = False
        if not self.handshake.done():
            self.handshake.set_exception(StdioLoadError(f"the target exited with {code} before answering initialize"))
        if not self.exited.done():
            self.exited.set_result(code)


class StdioLoad:
    """One target process driven with ``concurrency`` requests in flight."""

    def __init__(self, argv: list[str], concurrency: int, *, stderr: IO[bytes], cwd: str | None = None) -> None:
        self.argv = argv
        self.concurrency = concurrency
        self.stderr = stderr
        self.cwd = cwd
        self.recorder = Recorder()
        self.client: StdioClient | None = None
        self.transport: asyncio.SubprocessTransport | None = None

    @property
    def pid(self) -> int:
        assert self.transport is not None
        return self.transport.get_pid()

    async def start(self) -> None:
        """Launch the target, shake hands, and start the pipeline."""
        loop = asyncio.get_running_loop()
        self.transport, self.client = await loop.subprocess_exec(
            lambda: StdioClient(self.recorder),
            *self.argv,
            stderr=self.stderr,
            cwd=self.cwd,
            start_new_session=True,
        )
        self.client.write(initialize_body(0) + b"\n")
        async with asyncio.timeout(30):
            reply = await self.client.handshake
        if b'"result"' not in reply:
            raise StdioLoadError(f"initialize failed: {reply[:200]!r}")
        self.client.write(INITIALIZED + b"\n")
        self.client.start(self.concurrency)

    async def stop(self) -> None:
        """Stop sending, let the pipeline drain (bounded), close stdin and reap the target."""
        client, transport = self.client, self.transport
        if client is None or transport is None:
            return
        client.looping = False
        for _ in range(500):
            if not client.in_flight or client.exited.done():
                break
            await asyncio.sleep(0.01)
        if client.stdin is not None:
            client.stdin.close()
        try:
            async with asyncio.timeout(5):
                await client.exited
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(transport.get_pid(), signal.SIGKILL)  # the target and anything it spawned
            await client.exited
        transport.close()
