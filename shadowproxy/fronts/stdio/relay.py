"""What the stdio front reads in tasks of their own, and which server process a stdio client's message goes to.

A request through an HTTP upstream (``--upstream URL``, the bridge), or through the upstream's stateless process
(a handshake-era client's 2026-07-28 request), is read by a task: the server may ask the client something before
it answers. Everything it says joins the front's inbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from shadowproxy.core.errors import INTERNAL_ERROR, JsonRpcError
from shadowproxy.core.jsonrpc import ERROR, NOTIFICATION, REQUEST, RESPONSE, Message, error_response
from shadowproxy.core.protocol import MODERN_VERSION, MODERN_VERSIONS, request_protocol_version
from shadowproxy.fronts.client_headers import ToolHeaders
from shadowproxy.upstreams.base import Channel

log = logging.getLogger("shadowproxy.fronts.stdio.front")

HANDSHAKE, MODERN = "handshake", MODERN_VERSION
Put = Callable[[Message], None]


def is_modern(message: Message) -> bool:
    """A request of the 2026-07-28 era: its ``_meta`` names that version (an ``initialize`` never is one)."""
    params = message.data.get("params")
    if type(params) is not dict or "_meta" not in params:
        return False
    return message.data["method"] != "initialize" and request_protocol_version(message) in MODERN_VERSIONS


class Eras:
    """Which process a stdio client's messages go to: one client speaks one era and needs one process, its child.

    The client's first request settles the era. A 2026-07-28 client has everything served by the child (its first
    request opened the child's connection in that era). A handshake-era client that later sends a 2026-07-28
    request has it served by the upstream's stateless process, as the Streamable HTTP front would; the answers to
    what that process asks the client, and cancellations of its requests, go back to it.
    """

    __slots__ = ("asked", "era", "requests")

    def __init__(self) -> None:
        self.era: str | None = None
        self.requests: set[object] = set()
        """The client's requests in flight on the stateless process."""
        self.asked: set[object] = set()
        """The requests the stateless process sent the client, awaiting its answer."""

    def stateless(self, message: Message) -> bool:
        """Whether a client message goes to the stateless process; asked again of a message, the same answer."""
        kind = message.kind
        if kind is REQUEST:
            modern = is_modern(message)
            if self.era is None:
                self.era = MODERN if modern else HANDSHAKE
                return False
            return modern and self.era is HANDSHAKE
        if kind is NOTIFICATION:
            if not self.requests or message.data["method"] != "notifications/cancelled":
                return False
            params = message.params
            return isinstance(params, dict) and params.get("requestId") in self.requests
        return bool(self.asked) and message.data["id"] in self.asked


async def relay(
    channel: Channel,
    request: Message,
    headers: dict[str, str],
    put: Put,
    asked: set[object] | None = None,
    tools: ToolHeaders | None = None,
) -> None:
    """One request through ``channel``; what the server sends for it goes to ``put``, its answer last. The ids of
    the server's own requests among it are added to ``asked``; ``tools`` learns from a ``tools/list`` answer.
    With tracing on, the request's span is the current one (the front began it and ends it at the answer)."""
    exchange = None
    cancelled = False
    try:
        exchange = await channel.request(request, headers)
        while True:
            incoming = await exchange.next()
            kind = incoming.kind
            if kind is REQUEST and asked is not None:
                asked.add(incoming.data["id"])
            if (kind is RESPONSE or kind is ERROR) and incoming.id == request.id:
                if tools is not None:
                    await tools.learn(request, incoming)
                put(incoming)
                return
            put(incoming)
    except JsonRpcError as exc:
        put(error_response(request.id, exc))
    except asyncio.CancelledError:
        # The client cancelled the request (the era bridge's route): its stream upstream is closed as cancelled.
        cancelled = True
        raise
    except Exception:
        # The client still gets an answer, and a proxy waiting for its last answers is not held up.
        log.exception("request %r through the upstream failed", request.method)
        put(error_response(request.id, JsonRpcError(INTERNAL_ERROR, "the proxy failed to relay this request")))
    finally:
        if exchange is not None:
            await exchange.close(cancel=cancelled)
