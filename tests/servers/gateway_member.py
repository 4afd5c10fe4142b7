"""An SDK server for the gateway tests: it counts the ``tools/list`` requests it answers.

``--tools N`` adds N generated tools (for the tool-search figures), ``--delay S`` sleeps S seconds before serving
(for the parallel-start figure), ``--http PORT`` serves Streamable HTTP instead of stdio.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import mcp_types as types
from mcp.server import MCPServer
from mcp.server.mcpserver import Context


class CountingServer(MCPServer):
    lists = 0

    async def _handle_list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        CountingServer.lists += 1
        return await super()._handle_list_tools(ctx, params)


server = CountingServer("gateway-member")
calls = {"lookup": 0}


@server.tool()
def list_count() -> int:
    """How many tools/list requests this server has answered."""
    return CountingServer.lists


@server.tool(annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True))
def lookup(key: str) -> str:
    """Look a key up (read-only and idempotent); the answer says how many lookups this server ran."""
    calls["lookup"] += 1
    return f"{key}: lookup {calls['lookup']}"


@server.tool()
async def change(ctx: Context) -> str:
    """Tell the client the tool list changed, just after answering."""
    session = ctx.session

    async def later() -> None:
        await asyncio.sleep(0.05)
        await session.send_tool_list_changed()

    _later.add(asyncio.get_running_loop().create_task(later()))
    return "changing"


_later: set[asyncio.Task[None]] = set()


def generated(count: int) -> None:
    topics = ("invoice", "customer", "ticket", "deploy", "metric", "calendar", "repository", "weather", "order", "file")
    verbs = ("get", "list", "create", "update", "archive", "search")
    for index in range(count):
        topic, verb = topics[index % len(topics)], verbs[index // len(topics) % len(verbs)]
        name = f"{verb}_{topic}_{index}"

        def tool(id: str, note: str = "", limit: int = 10) -> str:
            return id

        server.add_tool(tool, name=name, description=f"{verb.capitalize()} a {topic} record by its id ({index}).")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int)
    parser.add_argument("--tools", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    generated(args.tools)
    time.sleep(args.delay)
    server.run("streamable-http", port=args.http) if args.http else server.run()
