"""What the parts of a Streamable HTTP endpoint (one POST's relay, the GET streams) use of the endpoint itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from shadowproxy.core.jsonrpc import Message
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions.manager import LiveSession, SessionManager
from shadowproxy.sessions.resumption import Resumption
from shadowproxy.upstreams.base import Channel

if TYPE_CHECKING:
    from shadowproxy.fronts.http.header_check import HeaderCheck


class McpEndpoint(Protocol):
    """The MCP endpoint of one mount, as its POST relay and its GET streams see it."""

    mount: Mount
    sessions: SessionManager
    resumption: Resumption | None
    """Set when the proxy makes the event ids (the upstream has none of its own) and can resume streams."""
    header_check: HeaderCheck | None
    forward_headers: bool
    keepalive: float
    request_timeout: float
    in_flight: int

    def resumption_for(self, channel: Channel | None) -> Resumption | None:
        """``resumption``, or the proxy's event log for a bridged session whose upstream has ids of its own."""
        ...

    def upstream_headers(self, request: web.Request) -> dict[str, str]: ...

    async def find_session(self, session_id: str, principal: str | None) -> LiveSession | None: ...

    async def lost(self, session: LiveSession, message: Message) -> web.Response: ...

    async def judge_server(
        self, incoming: Message, session: LiveSession, channel: Channel | None, request: Message | None
    ) -> Message | None: ...
