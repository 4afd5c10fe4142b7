"""The era-limited test servers over Streamable HTTP: ``python handshake_only.py --http PORT`` and the same for
``modern_only.py``.

The SDK's HTTP server routes each POST by its ``MCP-Protocol-Version`` header and serves both eras. These wrap
it so that it serves one:

- handshake only: a request naming 2026-07-28 is refused as a 2025-era SDK server refuses a session-less
  request (400, JSON-RPC ``-32600``, id ``server-error``);
- 2026-07-28 only: every request goes to the SDK's 2026-07-28 entry, whatever it names, so ``initialize`` is
  refused there as by a server written for that revision alone, and there is no GET stream.
"""

from __future__ import annotations

import json
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

MODERN = b"2026-07-28"
VERSION = b"mcp-protocol-version"


def _version(scope: Scope) -> bytes | None:
    return next((value for key, value in scope.get("headers", ()) if key == VERSION), None)


def handshake_only(app: ASGIApp) -> ASGIApp:
    async def refuse_modern(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _version(scope) == MODERN:
            error = {"code": -32600, "message": "Bad Request: No valid session ID provided"}
            body = json.dumps({"jsonrpc": "2.0", "id": "server-error", "error": error}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return refuse_modern


def modern_only(app: ASGIApp) -> ASGIApp:
    async def as_modern(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _version(scope) != MODERN:
            headers = [(key, value) for key, value in scope["headers"] if key != VERSION]
            scope = {**scope, "headers": [*headers, (VERSION, MODERN)]}
        await app(scope, receive, send)

    return as_modern


def serve(server: MCPServer, era: str, port: int) -> None:
    app: Any = server.streamable_http_app()
    wrapped = handshake_only(app) if era == "handshake" else modern_only(app)
    # The wrapped app's lifespan is the SDK app's: its session manager runs for as long as the server.
    uvicorn.run(wrapped, host="127.0.0.1", port=port, log_level="warning")
