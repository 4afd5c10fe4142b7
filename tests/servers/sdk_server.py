"""An MCP server on the official SDK, for the integration tests.

Stdio by default, ``--http PORT`` for Streamable HTTP, ``--sse PORT`` for the legacy HTTP+SSE transport.
"""

from __future__ import annotations

import argparse
import asyncio
import os

import mcp_types as types
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

server = MCPServer("test-server")


SHOUT = os.environ.get("SDK_SERVER_SHOUT") == "1"
"""A changed server for the tape tests: echo answers in capitals."""


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text.upper() if SHOUT else text


@server.tool()
async def progress(steps: int, ctx: Context, pause: float = 0.0) -> str:
    """Report progress and log a line per step, ``pause`` seconds apart."""
    for step in range(steps):
        if step and pause:
            await asyncio.sleep(pause)
        await ctx.report_progress(step + 1, steps, f"step {step + 1}")
        await ctx.info(f"log {step + 1}")
    return f"done {steps}"


@server.tool()
async def ask(question: str, ctx: Context) -> str:
    """Ask the client's model (a sampling request) and return its answer."""
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=question))
    result = await ctx.session.create_message(messages=[message], max_tokens=20)
    return f"model said: {result.content.text}"


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
async def changed(ctx: Context, after: float = 0.05) -> str:
    """Tell the client the tool list changed ``after`` seconds after answering: a notification for its GET stream."""
    session = ctx.session

    async def later() -> None:
        await asyncio.sleep(after)
        await session.send_tool_list_changed()

    task = asyncio.get_running_loop().create_task(later())
    _later.add(task)
    task.add_done_callback(_later.discard)
    return "scheduled"


_later: set[asyncio.Task[None]] = set()


@server.tool()
def fail(reason: str) -> str:
    """Raise an error."""
    raise ValueError(reason)


@server.tool()
def crash() -> str:
    """Kill this server process."""
    os._exit(3)


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.resource("test://static")
def static() -> str:
    """A fixed text."""
    return "static text"


@server.prompt()
def greet(name: str) -> str:
    """Greet someone."""
    return f"Hello, {name}!"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int)
    parser.add_argument("--sse", type=int, help="serve the 2024-11-05 HTTP+SSE transport (/sse, /messages/)")
    args = parser.parse_args()
    if args.sse:
        server.run("sse", port=args.sse)
    elif args.http:
        server.run("streamable-http", port=args.http)
    else:
        server.run()
