"""The SDK test server (``sdk_server.py``'s tools) forced to the handshake era, over stdio.

The SDK's ``Server.run`` serves both eras; this drives its handshake-only loop, so ``server/discover`` and
every request carrying the 2026-07-28 envelope are refused, as by a server written before 2026-07-28.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from mcp.server.elicitation import AcceptedElicitation
from mcp.server.mcpserver import Context
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.sdk_server import server


class Name(BaseModel):
    name: str


@server.tool()
async def greet_me(ctx: Context) -> str:
    """Ask the user's name (an elicitation request), then greet them."""
    answer = await ctx.elicit("What is your name?", Name)
    return f"Hello, {answer.data.name}!" if isinstance(answer, AcceptedElicitation) else f"no name: {answer.action}"


@server.tool()
async def until_cancelled(marker: str) -> str:
    """Write ``marker`` (a file path) with ``started``, wait until cancelled, then write ``cancelled`` to it."""
    await anyio.Path(marker).write_text("started")
    try:
        await anyio.sleep(60)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await anyio.Path(marker).write_text("cancelled")
        raise
    return "not cancelled"


@server.tool()
async def change_now(ctx: Context) -> str:
    """Tell the client the tool list changed while the call is still in flight (over stdio, on the call's way)."""
    await ctx.session.send_tool_list_changed()
    return "changed"


async def main() -> None:
    low = server._lowlevel_server
    async with stdio_server() as (read_stream, write_stream), low.lifespan(low) as state:
        await serve_loop(
            low, read_stream, write_stream, lifespan_state=state, init_options=low.create_initialization_options()
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        from tests.servers.era_http import serve

        serve(server, "handshake", int(sys.argv[2]))
    else:
        anyio.run(main)
