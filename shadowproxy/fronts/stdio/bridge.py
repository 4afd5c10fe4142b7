"""The stdio-to-HTTP bridge: ``shadowproxy stdio --upstream URL``, a stdio client in front of an HTTP server.

Each request in flight is read by a task of its own (:func:`~shadowproxy.fronts.stdio.relay.relay`), since the
server may ask the client something before it answers; what it reads joins the front's inbox. Every message goes
upstream with the headers a Streamable HTTP client would have sent beside it.
"""

from __future__ import annotations

import asyncio
import contextlib

from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.core.tasks import spawn
from shadowproxy.fronts.client_headers import ToolHeaders, client_headers
from shadowproxy.fronts.session_front import listen_upstream
from shadowproxy.fronts.stdio.front import StdioFront
from shadowproxy.fronts.stdio.relay import relay
from shadowproxy.proxy.mount import Mount
from shadowproxy.upstreams.base import Channel


class StdioBridgeFront(StdioFront):
    """A stdio front in front of an HTTP upstream."""

    def __init__(self, mount: Mount, *, request_timeout: float | None = None) -> None:
        super().__init__(mount, request_timeout=request_timeout)
        self.channel: Channel | None = None
        self.listener: asyncio.Task[None] | None = None
        # The Mcp-Param-* maps of the tools this client listed.
        self.tools = ToolHeaders()

    async def start(self) -> None:
        self.channel = await self.mount.open_channel(self.from_upstream)

    def route(self, message: Message) -> bool:
        return False

    async def forward(self, message: Message, stateless: bool) -> None:
        assert self.channel is not None
        if message.is_request:
            self.sent(message)
            headers = self.upstream_headers(message)
            reading = relay(self.channel, message, headers, self.from_upstream, tools=self.tools)
            spawn(reading, name=f"bridge-{message.id}")
        else:
            with contextlib.suppress(UpstreamError):
                await self.channel.send(message, self.upstream_headers(message))

    def upstream_headers(self, message: Message) -> dict[str, str]:
        """What an HTTP client of this session would have sent alongside this message."""
        return client_headers(message, self.session.record.protocol_version, self.tools)

    def initialized(self) -> None:
        assert self.channel is not None
        headers = self.upstream_headers(Message(Kind.NOTIFICATION, {}))
        listening = listen_upstream(self.channel, headers, self.from_upstream, self.session.id)
        self.listener = spawn(listening, name="bridge-listen")

    async def send_answer(self, answer: Message) -> None:
        assert self.channel is not None
        await self.channel.send(answer, self.upstream_headers(answer))

    async def close_upstream(self) -> None:
        if self.listener is not None:
            self.listener.cancel()
        if self.channel is not None:
            await self.channel.close()
