"""The protocol each client connection starts with: the fast path's, or aiohttp's own handler; and what the fast
path needs of aiohttp.

A :class:`~shadowproxy.fronts.http.connection.Connection` joins aiohttp's :class:`~aiohttp.web.Server` as if it
were one of
aiohttp's own request handlers (to be counted and shut down with them) and hands its transport to a new one of
those mid-stream; a :class:`~shadowproxy.fronts.http.fast_request.PlainStream` stands in for aiohttp's response.
None of that is
aiohttp's public API. :data:`RELIED_ON` names each piece with the shape it has in the aiohttp releases the
project pins (the names a method's code reads, not only its signature: what it does with our objects is what we
rely on), and tests/test_aiohttp_internals.py checks every one. When a piece no longer holds, :func:`protocols`
gives every connection to aiohttp's own handler after one warning, as ``fast_path: false`` does on purpose.

aiohttp has no write timeout: a client that pipelines requests and never reads their answers would keep its
connection, and the task serving it, for ever. Its handler is therefore always wrapped in :class:`Watched`,
which aborts such a connection after ``limits.idle_timeout`` as a Connection does.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

TESTED = "aiohttp>=3.14,<3.15"
"""The range pyproject.toml pins and the warning names."""


def names_read(function: Callable[..., Any]) -> frozenset[str]:
    """The attribute and global names ``function``'s code reads, its nested functions and generators included."""
    found: set[str] = set()
    codes = [function.__code__]
    while codes:
        code = codes.pop()
        found.update(code.co_names)
        codes.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    return frozenset(found)


def parameters(function: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(inspect.signature(function).parameters)


def shaped(function: Callable[..., Any], params: tuple[str, ...], reads: set[str]) -> bool:
    return parameters(function) == params and names_read(function) == reads


@dataclass(frozen=True, slots=True)
class Reliance:
    """One piece of aiohttp the fast path relies on, and how to tell it still has the shape relied on."""

    name: str
    why: str
    check: Callable[[], bool]

    def holds(self) -> bool:
        try:
            return self.check()
        except Exception:
            # A piece that is gone, or no longer Python code, does not hold.
            return False


def _streams_like_plain() -> bool:
    stream = web.StreamResponse
    return (
        parameters(stream.__init__)[:4] == ("self", "status", "reason", "headers")
        and isinstance(vars(stream)["prepared"], property)
        and parameters(stream.prepare) == ("self", "request")
        and parameters(stream.write) == ("self", "data")
        and parameters(stream.write_eof) == ("self", "data")
    )


RELIED_ON: tuple[Reliance, ...] = (
    Reliance(
        "aiohttp.web.Server.connection_made(handler, transport)",
        "a Connection joins the server's connections, to be counted and shut down with aiohttp's",
        lambda: shaped(web.Server.connection_made, ("self", "handler", "transport"), {"_connections"}),
    ),
    Reliance(
        "aiohttp.web.Server.connection_lost(handler, exc)",
        "it must read nothing of a Connection but _task_handler, which Connection sets to None",
        lambda: shaped(
            web.Server.connection_lost,
            ("self", "handler", "exc"),
            {"_connections", "_task_handler", "add_done_callback", "pop"},
        ),
    ),
    Reliance(
        "aiohttp.web.Server.connections",
        "the connection gauge counts Connections in it",
        lambda: shaped(web.Server.connections.fget, ("self",), {"_connections", "keys", "list"}),
    ),
    Reliance(
        "aiohttp.web.Server.pre_shutdown()",
        "it must call nothing of a Connection but close()",
        lambda: shaped(web.Server.pre_shutdown, ("self",), {"_connections", "close"}),
    ),
    Reliance(
        "aiohttp.web.Server.shutdown(timeout)",
        "it must call nothing of a Connection but shutdown(timeout)",
        lambda: shaped(
            web.Server.shutdown, ("self", "timeout"), {"_connections", "asyncio", "clear", "gather", "shutdown"}
        ),
    ),
    Reliance(
        "aiohttp.web.Server()",
        "makes the RequestHandler (an asyncio.Protocol) a Connection hands its transport and unread bytes to",
        lambda: (
            parameters(web.Server.__call__) == ("self",)
            and issubclass(web.RequestHandler, asyncio.Protocol)
            and {"connection_made", "data_received"} <= vars(web.RequestHandler).keys()
        ),
    ),
    Reliance(
        "aiohttp.web.StreamResponse(status, reason, headers)",
        "PlainStream is one, with its own prepared, prepare(request), write(data) and write_eof(data)",
        _streams_like_plain,
    ),
)


def unsupported() -> list[str]:
    """The names of what the fast path relies on that this aiohttp no longer has; empty when it may run."""
    return [reliance.name for reliance in RELIED_ON if not reliance.holds()]


class Watched(asyncio.Protocol):
    """aiohttp's handler for one connection, aborted when its client has taken nothing of what it was sent for
    ``idle_timeout`` seconds (the transport's buffer past its high-water mark all that time)."""

    def __init__(self, handler: web.RequestHandler, idle_timeout: float) -> None:
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()  # type: ignore[func-returns-value]

    def pause_writing(self) -> None:
        self.handler.pause_writing()
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.idle_timeout, self.expire)

    def resume_writing(self) -> None:
        self.unwatch()
        self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.unwatch()
        self.handler.connection_lost(exc)

    def unwatch(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def expire(self) -> None:
        self.timer = None
        assert self.transport is not None
        log.warning("a client did not read its answers within limits.idle_timeout; closing its connection")
        self.transport.abort()


def protocols(
    server: web.Server, connection: Callable[[], asyncio.Protocol], idle_timeout: float, wanted: bool
) -> Callable[[], asyncio.Protocol]:
    """The listening socket's protocol factory: ``connection`` (the fast path) when ``wanted`` and this aiohttp
    has what it relies on; else aiohttp's own handler, watched."""
    if wanted:
        missing = unsupported()
        if not missing:
            return connection
        log.warning(
            "fast path off: aiohttp %s changed what shadowproxy/fronts/http/connection.py relies on (%s); "
            "aiohttp's own handler"
            " serves every request. shadowproxy is tested with %s; set fast_path: false to silence this warning",
            aiohttp.__version__,
            "; ".join(missing),
            TESTED,
        )
    else:
        log.info("fast path off (fast_path: false): aiohttp's own handler serves every request")
    return lambda: Watched(server(), idle_timeout)
