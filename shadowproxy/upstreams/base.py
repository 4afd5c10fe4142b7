"""The upstream seam: how a session reaches its MCP server.

An :class:`Upstream` is one configured server; it opens a :class:`Channel` per
session (or hands every session the same shared one). A channel sends a request
and returns an :class:`Exchange`: the messages the server sends for that
request, ending with its response, read in the task that asked. The seam does
not know about HTTP clients, sessions stores or the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import Message

UnsolicitedHandler = Callable[[Message], None]
"""Receives server messages that belong to no request in flight (list-changed, unrelated logs)."""


class Pending(Inbox[Message]):
    """The inbox of one request in flight: filled by a protocol callback, drained by the waiting task."""

    __slots__ = ("key", "original_id", "request", "token")

    def __init__(self, request: Message, key: object = None) -> None:
        super().__init__()
        self.request = request
        self.key = key
        self.original_id = request.id
        self.token: object = None


class Exchange(Protocol):
    """The upstream's answer to one request.

    ``status`` is the HTTP status the upstream chose (``None`` when its transport
    has none, as over stdio); ``streaming`` says it answered with an event stream,
    ``event_id`` is the upstream's id for the message ``next`` returned last, and
    ``controls`` holds event frames without a message (priming, retry) to pass on.
    ``next`` returns the server's messages in order and the last is the response;
    ``close(cancel=True)`` tells the server the requester gave up.
    """

    status: int | None
    streaming: bool
    controls: list[bytes] | tuple[bytes, ...]
    event_id: str | None

    async def next(self) -> Message: ...

    async def close(self, *, cancel: bool = False) -> None: ...


async def final_reply(exchange: Exchange) -> Message:
    """The response that ends ``exchange`` (what the server sent before it is passed over), the exchange closed after;
    a caller that bounds the wait puts its own timeout around this."""
    try:
        reply = await exchange.next()
        while not reply.is_reply:
            reply = await exchange.next()
        return reply
    finally:
        await exchange.close()


class Channel(Protocol):
    """One session's path to its server."""

    upstream_session_id: str | None

    async def request(self, message: Message, headers: Mapping[str, str]) -> Exchange: ...

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        """A notification, or the client's response to a server request; no answer is awaited."""

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        """Carry on a session this channel did not start: reuse the server's session id, or replay the handshake."""

    async def listen(self, headers: Mapping[str, str]) -> Exchange | None:
        """The server's stream of messages tied to no request, or ``None`` when they arrive as unsolicited ones."""

    async def close(self) -> None:
        """End the session, upstream too (an HTTP DELETE)."""

    async def detach(self) -> None:
        """Let go of the session without ending it upstream, so another process can carry it on."""


class Upstream(Protocol):
    """One configured MCP server."""

    name: str

    async def open(self, on_unsolicited: UnsolicitedHandler, *, shared: bool = False) -> Channel:
        """A channel for a new session; ``shared`` asks for the one channel all stateless requests use."""

    async def close(self) -> None: ...


class Answered:
    """An exchange that is already over: one message the proxy made (an error, or the bridge's own answer)."""

    __slots__ = ("_message", "status")
    streaming = False
    controls: tuple[bytes, ...] = ()
    event_id = None

    def __init__(self, message: Message, status: int | None = None) -> None:
        self._message: Message | None = message
        self.status = status

    async def next(self) -> Message:
        if self._message is None:
            raise UpstreamError("the exchange is over")
        message, self._message = self._message, None
        return message

    async def close(self, *, cancel: bool = False) -> None:
        self._message = None


class Wrapped:
    """An exchange that passes another's on, changing what a subclass overrides: ``next``, mostly."""

    def __init__(self, inner: Exchange) -> None:
        self.inner = inner

    @property
    def status(self) -> int | None:
        return self.inner.status

    @property
    def streaming(self) -> bool:
        return self.inner.streaming

    @property
    def controls(self) -> list[bytes] | tuple[bytes, ...]:
        return self.inner.controls

    @property
    def event_id(self) -> str | None:
        return self.inner.event_id

    async def next(self) -> Message:
        return await self.inner.next()

    async def close(self, *, cancel: bool = False) -> None:
        await self.inner.close(cancel=cancel)
