"""An SDK server that speaks only the 2026-07-28 revision, over stdio: ``initialize`` is refused.

Its ``ask`` tool asks the client's model the 2026-07-28 way, with an ``InputRequiredResult``; ``echo``,
``count`` (with progress), ``slow``, a resource and a prompt cover the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.runner import _serve_modern_stream
from mcp.server.stdio import stdio_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

server = MCPServer("modern-only")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool()
async def count(steps: int, ctx: Context) -> str:
    """Report progress once a step."""
    for step in range(steps):
        await ctx.report_progress(step + 1, steps)
    return f"counted {steps}"


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer: a quiet answer, for the proxy's polling."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
async def ask(question: str, ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    """Ask the client's model through an InputRequiredResult, then answer with what it said."""
    answer: Any = (ctx.input_responses or {}).get("model")
    if answer is None:
        message = {"role": "user", "content": {"type": "text", "text": question}}
        sample = {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": 20}}
        return types.InputRequiredResult.model_validate(
            {"resultType": "input_required", "inputRequests": {"model": sample}}
        )
    text = answer.content.text if isinstance(answer.content, types.TextContent) else "?"
    return types.CallToolResult(content=[types.TextContent(type="text", text=f"model said: {text}")])


@server.tool()
async def touch(uri: str, ctx: Context) -> str:
    """Tell the listen streams that follow ``uri`` it changed."""
    await ctx.notify_resource_updated(uri)
    return "touched"


@server.resource("test://static")
def static() -> str:
    """A fixed text."""
    return "static text"


@server.prompt()
def greet(name: str) -> str:
    """Greet someone."""
    return f"Hello, {name}!"


async def main() -> None:
    low = server._lowlevel_server
    async with stdio_server() as (read_stream, write_stream), low.lifespan(low) as state:
        await _serve_modern_stream(low, read_stream, write_stream, lifespan_state=state, raise_exceptions=False)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        from tests.servers.era_http import serve

        serve(server, "modern", int(sys.argv[2]))
    else:
        anyio.run(main)
