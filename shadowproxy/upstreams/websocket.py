"""WebSocket upstreams: MCP servers at ``ws://`` or ``wss://`` URLs, subprotocol ``mcp``.

A channel is one connection and one server session; one JSON-RPC message
travels per text frame. The connection is read by one task per session (a
WebSocket can only be read by awaiting it), which routes each message to the
request waiting for it. aiohttp pings the server every ``HEARTBEAT`` seconds
and drops the connection when no pong comes back.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import WSMsgType

from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.base import UnsolicitedHandler
from shadowproxy.upstreams.http import UpstreamSessionLost, UrlUpstream
from shadowproxy.upstreams.routing import RoutedChannel, Router

log = logging.getLogger(__name__)

SUBPROTOCOL = "mcp"
HEARTBEAT = 15.0
MAX_FRAME = 64 * 1024 * 1024


class WebSocketChannel(RoutedChannel):
    """One session with a WebSocket server."""

    def __init__(
        self, upstream: WebSocketUpstream, ws: aiohttp.ClientWebSocketResponse, on_unsolicited: UnsolicitedHandler
    ) -> None:
        self.upstream = upstream
        self.ws = ws
        self.router = Router(upstream.name, on_unsolicited, self.transmit)
        self._reader = spawn(self._read(), name=f"ws-upstream-{upstream.name}")

    async def _read(self) -> None:
        ws = self.ws
        try:
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    self.router.feed(frame.data.encode())
                elif frame.type is WSMsgType.BINARY:
                    log.warning("upstream %s sent a binary frame; closing", self.upstream.name)
                    await ws.close(code=1003, message=b"binary frames are not MCP")
        finally:
            code = ws.close_code
            why = f" ({ws.exception()})" if ws.exception() is not None else ""
            error = UpstreamSessionLost(f"upstream {self.upstream.name!r} closed the WebSocket with code {code}{why}")
            self.router.end(error)

    async def transmit(self, message: Message) -> None:
        if self.router.ended is not None:
            raise self.router.ended
        try:
            await self.ws.send_frame(message.to_bytes(), WSMsgType.TEXT)
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise UpstreamError(f"upstream {self.upstream.name!r} WebSocket broke: {exc}") from None

    async def close(self) -> None:
        self.router.end(UpstreamError(f"the session with upstream {self.upstream.name!r} is closed"))
        await self.ws.close(code=1000, message=b"session closed")
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class WebSocketUpstream(UrlUpstream):
    """A server at a ``ws://`` or ``wss://`` URL."""

    async def open(self, on_unsolicited: UnsolicitedHandler, *, shared: bool = False) -> WebSocketChannel:
        try:
            ws = await self.client().ws_connect(
                self.url,
                protocols=(SUBPROTOCOL,),
                heartbeat=HEARTBEAT,
                max_msg_size=MAX_FRAME,
                headers=dict(self.config.headers),
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise UpstreamError(f"upstream {self.name!r} refused the WebSocket: HTTP {exc.status}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"upstream {self.name!r} is unreachable: {exc}") from None
        if ws.protocol != SUBPROTOCOL:
            await ws.close(code=1002, message=b"subprotocol mcp is required")
            raise UpstreamError(f"upstream {self.name!r} did not accept the WebSocket subprotocol mcp")
        return WebSocketChannel(self, ws, on_unsolicited)
