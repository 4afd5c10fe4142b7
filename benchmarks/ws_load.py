"""The WebSocket load client: N simulated clients, each one WebSocket (subprotocol ``mcp``) and one MCP session.

Each socket initializes its session (``initialize``, ``notifications/initialized``)
and then runs a closed loop of echo ``tools/call`` requests, one in flight, one
text frame per message (MCP over WebSocket takes no binary frames). It uses aiohttp's WebSocket client with one task per
socket, which costs more per request than the HTTP client's protocol callbacks:
the ``client CPU`` column says when it becomes the limit.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from benchmarks.recorder import INITIALIZED, Recorder, call_body, initialize_body, is_echo
from shadowproxy.core.tasks import spawn


class WsLoadError(Exception):
    """A socket that could not be opened, or a handshake answered wrongly."""


class WsLoad:
    """``concurrency`` simulated clients against one WebSocket endpoint."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        self.concurrency = concurrency
        self.recorder = Recorder()
        self.looping = False
        self.client: aiohttp.ClientSession | None = None
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open and initialize every session, then start every closed loop."""
        self.client = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(30):
                for _ in range(self.concurrency):
                    self.sockets.append(await self.client.ws_connect(self.url, protocols=("mcp",)))
                await asyncio.gather(*(self._initialize(socket) for socket in self.sockets))
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self.stop()
            raise WsLoadError(f"could not open the WebSocket sessions: {exc or type(exc).__name__}") from None
        self.looping = True
        self.loops = [spawn(self._loop(socket), name="ws-load-client") for socket in self.sockets]

    async def _initialize(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        await socket.send_str(initialize_body(0).decode())
        reply = await socket.receive()
        if reply.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY) or b'"result"' not in _bytes(reply):
            raise WsLoadError(f"initialize failed: {reply.data!r:.200}")
        await socket.send_str(INITIALIZED.decode())

    async def _loop(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        request_id = 1
        recorder = self.recorder
        while self.looping:
            sent = time.perf_counter_ns()
            await socket.send_str(call_body(request_id).decode())
            reply = await socket.receive()
            if reply.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                recorder.error(f"the socket closed mid-run: {reply.type.name} {reply.extra!r}")
                return
            body = _bytes(reply)
            if is_echo(body, request_id):
                recorder.latencies.append(time.perf_counter_ns() - sent)
            else:
                recorder.error(f"not the echo answer: {body[:200]!r}")
            request_id += 1

    async def stop(self) -> None:
        """Let the requests in flight finish, then close every socket."""
        self.looping = False
        if self.loops:
            await asyncio.wait(self.loops, timeout=5)
        for socket in self.sockets:
            await socket.close()
        if self.client is not None:
            await self.client.close()


def _bytes(reply: aiohttp.WSMessage) -> bytes:
    return reply.data.encode() if isinstance(reply.data, str) else reply.data  # type: ignore[no-any-return]
