"""MCP POSTs that a :class:`~shadowproxy.fronts.http.connection.Connection` read itself: the request the front
door and the endpoint see, and the event stream that answers one, in the shape of aiohttp's so that both serve
them alike; and what a connection needs of the front door and the endpoints it brings them to."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from typing import Any, Protocol, cast

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from shadowproxy.proxy.mount import Mount


class ClientConnection(Protocol):
    """What a :class:`PlainStream` writes through: the client connection its request came on."""

    def send_head(
        self, status: int, reason: str, headers: CIMultiDict[str], extra: bytes = b"", body: bytes = b""
    ) -> None: ...

    async def send(self, data: bytes) -> None:
        """Part of a streamed answer, waiting while the client reads slower than it is written."""
        ...


class PlainRequest(dict[str, Any]):
    """An MCP POST read by a :class:`ClientConnection`: what the front door, authentication and the endpoint read of a
    request (its mapping holds what they leave on it, as an aiohttp request's does)."""

    __slots__ = ("body", "connection", "content_type", "headers", "path")
    method = "POST"
    scheme = "http"

    def __init__(self, connection: ClientConnection, path: str, headers: CIMultiDictProxy[str], body: bytes) -> None:
        super().__init__()
        self.connection = connection
        self.path = path
        self.headers = headers
        self.body = body
        self.content_type = headers.get("Content-Type", "").partition(";")[0].strip().lower()

    @property
    def host(self) -> str:
        return self.headers.get("Host", "")


class PostEndpoint(Protocol):
    """An MCP endpoint, as a connection serves it: at its mount's path, taking POSTs."""

    @property
    def mount(self) -> Mount: ...

    async def post(self, request: web.Request) -> web.StreamResponse: ...


class Door(Protocol):
    """The front door, as a connection brings it the requests it read."""

    @property
    def endpoints(self) -> Mapping[str, PostEndpoint]:
        """The MCP endpoints by path."""
        ...

    async def answer(
        self, request: PlainRequest, handler: Callable[[web.Request], Awaitable[web.StreamResponse]], *, timed: bool
    ) -> web.StreamResponse:
        """``handler``'s answer to ``request``, or the refusal that comes first."""
        ...

    def unfinished(self, request_id: str | None) -> web.Response:
        """503 to a request whose body was still arriving when shutdown began."""
        ...


class PlainStream(web.StreamResponse):
    """A ``text/event-stream`` answer on a :class:`ClientConnection`, in chunked encoding: the part of aiohttp's
    :class:`~aiohttp.web.StreamResponse` that the endpoint uses, so that it streams the same way to both."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(status=200, headers=headers)
        self.connection: ClientConnection | None = None

    @property
    def prepared(self) -> bool:
        return self.connection is not None

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        connection = cast(PlainRequest, request).connection
        connection.send_head(self.status, self.reason, self.headers, b"Transfer-Encoding: chunked\r\n")
        self.connection = connection

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self.connection is not None, "prepare() first"
        data = bytes(data)
        await self.connection.send(b"%x\r\n%s\r\n" % (len(data), data))

    async def write_eof(self, data: bytes = b"") -> None:
        assert self.connection is not None, "prepare() first"
        if data:
            await self.write(data)
        await self.connection.send(b"0\r\n\r\n")


def event_stream(request: web.BaseRequest | PlainRequest, headers: dict[str, str]) -> web.StreamResponse:
    """The (unprepared) event stream that answers ``request``, on whichever connection it came."""
    if isinstance(request, PlainRequest):
        return PlainStream(headers)
    return web.StreamResponse(status=200, headers=headers)


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The ``Date`` header's value, formatted once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True).encode())
    return _date[1]
