"""The SDK test server over WebSocket (aiohttp, subprotocol ``mcp``): ``python ws_server.py PORT``."""

from __future__ import annotations

import sys

import anyio
from aiohttp import web
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage

from tests.servers.sdk_server import server
from tests.streams.ws_transport import pump

OPEN: set[web.WebSocketResponse] = set()


async def handle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("mcp",))
    await ws.prepare(request)
    OPEN.add(ws)
    read_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
    write_stream, write_reader = create_context_streams[SessionMessage](0)
    lowlevel = server._lowlevel_server
    async with anyio.create_task_group() as group:
        group.start_soon(lowlevel.run, read_stream, write_stream, lowlevel.create_initialization_options())
        await pump(ws, read_writer, write_reader)
        group.cancel_scope.cancel()
    OPEN.discard(ws)
    return ws


async def close_all(app: web.Application) -> None:
    for ws in list(OPEN):
        await ws.close(code=1001, message=b"server shutting down")


if __name__ == "__main__":
    app = web.Application()
    app.router.add_get("/ws", handle)
    app.on_shutdown.append(close_all)
    app.router.add_get("/", lambda request: web.Response(text="ok"))  # type: ignore[arg-type,return-value]
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
