"""The conformance fixture limited to one protocol era (``--era handshake`` or ``--era modern``), for the
bridged pairings of scripts/conformance.sh: the suite's 2026-07-28 set through the proxy against the fixture
that speaks only the handshake era, and its 2025-11-25 set against the fixture that speaks only 2026-07-28.

Over stdio the SDK's handshake loop or its 2026-07-28 loop serves the fixture; over Streamable HTTP the SDK's
app is wrapped as the bridge's test servers are (``tests/servers/era_http.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.runner import _serve_modern_stream, serve_loop
from mcp.server.stdio import stdio_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.era_http import handshake_only, modern_only


async def _stdio(server: MCPServer, era: str) -> None:
    low = server._lowlevel_server
    async with stdio_server() as (read_stream, write_stream), low.lifespan(low) as state:
        if era == "handshake":
            options = low.create_initialization_options()
            await serve_loop(low, read_stream, write_stream, lifespan_state=state, init_options=options)
        else:
            await _serve_modern_stream(low, read_stream, write_stream, lifespan_state=state, raise_exceptions=False)


def serve(server: MCPServer, era: str, transport: str, host: str, port: int, **http: Any) -> None:
    """Serve ``server`` in ``era`` only (``handshake`` or ``modern``) over ``transport``."""
    if transport == "stdio":
        anyio.run(_stdio, server, era)
        return
    app: Any = server.streamable_http_app(**http)
    uvicorn.run(handshake_only(app) if era == "handshake" else modern_only(app), host=host, port=port)
