"""Limits at the HTTP edge: the process's :class:`~shadowproxy.sessions.admission.Guard` on the aiohttp app, the
answer to a refusal, the body read timeout, and aiohttp's own size and keep-alive knobs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web

from shadowproxy.config.limits import Limits
from shadowproxy.core import logs
from shadowproxy.core.limit_hits import LimitExceeded
from shadowproxy.sessions.admission import Guard

log = logging.getLogger(__name__)


def refusal(error: LimitExceeded, request_id: object = None) -> web.Response:
    """The HTTP answer to a refusal: its status, a JSON-RPC error, and ``Retry-After`` when waiting helps."""
    body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": error.to_error()})
    headers = {"Retry-After": "1"} if error.status in (429, 503) else None
    return web.Response(body=body, status=error.status, content_type="application/json", headers=headers)


GUARD = web.AppKey("limits", Guard)
_DEFAULT_GUARD = Guard(Limits())


def install(app: web.Application, guard: Guard) -> None:
    """Put the process's :class:`Guard` on ``app``, before it starts, for the handlers it routes."""
    app[GUARD] = guard


def guard_of(request: web.Request) -> Guard:
    """The app's guard; an app assembled without :func:`install` (some stream tests) gets the defaults."""
    return request.config_dict.get(GUARD, _DEFAULT_GUARD)


def hold_stream(request: web.Request, session_id: str) -> None:
    """Count one GET stream of ``session_id`` until its handler ends, or raise :class:`LimitExceeded`."""
    streams = guard_of(request).streams
    streams.enter(session_id)
    task = asyncio.current_task()
    assert task is not None
    # aiohttp runs each request in a task of its own, so the stream is over when that task is.
    task.add_done_callback(lambda _: streams.leave(session_id))


def server_options(limits: Limits) -> dict[str, Any]:
    """aiohttp's own knobs; its keep-alive timer also closes a connection whose headers never complete."""
    return {
        "keepalive_timeout": limits.idle_timeout,
        "max_line_size": limits.max_header_size,
        "max_field_size": limits.max_header_size,
        "max_headers": limits.max_headers,
    }


async def read_body(request: web.BaseRequest, body_timeout: float) -> bytes | web.Response:
    """The request body within ``limits.body_timeout``, or the 408 already sent to a client that trickles it.

    aiohttp has no body read timeout, and after an answer it would go on reading the rest of the body for its
    lingering time; the connection is closed as soon as the 408 is out instead.
    """
    if request.content.is_eof():
        # The whole body came with the headers (the usual case): nothing to wait for, so no timer.
        return await request.read()
    try:
        async with asyncio.timeout(body_timeout):
            return await request.read()
    except TimeoutError:
        pass
    text = f"the body did not arrive within {body_timeout:g}s (limits.body_timeout)"
    error = LimitExceeded("body_timeout", 408, text)
    log.warning("a client sent its body too slowly; closing its connection")
    response = refusal(error)
    response.force_close()
    # Sent from here, before the front door could tag it.
    logs.tag(response.headers)
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response
