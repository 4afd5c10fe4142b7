"""``GET /_shadowproxy/tap``: the live tap (:mod:`shadowproxy.proxy.tap`) as an SSE stream, behind the admin token.

Query parameters: ``session`` (an id prefix), ``method`` (a prefix, or a glob when it holds ``*``, ``?`` or
``[``), ``bodies=1`` (the message itself, after the chain, masked by the rules' redactors).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from shadowproxy.core import sse
from shadowproxy.proxy.tap import TAP, TapFilter, TapListener

OPEN = sse.comment("tap open")
"""The first bytes of a tap stream: a reader sees it is attached before any message passes."""

OPENAPI_QUERY = [
    {"name": "session", "in": "query", "required": False, "schema": {"type": "string"}, "description": "id prefix"},
    {"name": "method", "in": "query", "required": False, "schema": {"type": "string"}, "description": "prefix or glob"},
    {"name": "bodies", "in": "query", "required": False, "schema": {"type": "string", "enum": ["0", "1"]}},
]
OPENAPI_RESPONSES = {
    "200": {
        "description": "One ``data:`` JSON event per message; ``event: dropped`` when this reader lost events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    "400": {
        "description": "A bad query parameter",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
}


def stream(keepalive: float) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The ``GET /_shadowproxy/tap`` handler (behind the admin token check)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            tap_filter = TapFilter.from_query(request.query)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        # Attached before the headers go out: a reader that has them misses nothing from then on.
        listener = TAP.attach(tap_filter)
        transport = request.transport
        listener.abort = transport.abort if transport is not None else None
        response = web.StreamResponse(status=200, headers=sse.SSE_HEADERS)
        try:
            await response.prepare(request)
            await _write(response, listener, OPEN)
            while not listener.closed:
                chunk = listener.take()
                if chunk:
                    await _write(response, listener, chunk)
                    continue
                try:
                    async with asyncio.timeout(keepalive):
                        await listener.wait()
                except TimeoutError:
                    await _write(response, listener, sse.KEEPALIVE)
        except ConnectionError:
            pass  # the reader hung up, or was cut off at shutdown
        finally:
            TAP.detach(listener)
        return response

    return handler


async def _write(response: web.StreamResponse, listener: TapListener, chunk: bytes) -> None:
    listener.writing = True
    try:
        await response.write(chunk)
    finally:
        listener.writing = False


async def close_listeners(app: web.Application) -> None:
    """On shutdown: end every tap stream, so the server need not wait for them."""
    TAP.close()
