"""Drive @modelcontextprotocol/server-everything with the `mcp` SDK client and record what happened.

    python scripts/conformance/everything_client.py --http URL  --out FILE
    python scripts/conformance/everything_client.py --sse URL   --out FILE
    python scripts/conformance/everything_client.py --stdio "mcp-server-everything stdio" --out FILE

The scenarios are the issue's: echo, a long-running operation with progress, a sampling request the
server sends back to this client, and a resource subscription with its update notification. Each
outcome is written as plain JSON (no ids, no timings) so that a run direct and a run through the proxy
can be compared for equality. A failing scenario is recorded as its error, not raised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPDeprecationWarning

SUBSCRIBED_URI = "demo://resource/dynamic/text/1"
NOTIFICATION_WAIT = 10.0  # seconds: server-everything sends the first update as soon as updates are toggled on
CALL_TIMEOUT = 30.0


async def answer_sampling(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
    """A deterministic stand-in for an LLM: the answer names the question."""
    question = params.messages[0].content
    text = question.text if isinstance(question, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"answer to: {text}"), model="shadowproxy-test"
    )


class Notifications:
    """Resource-updated notifications as they arrive, with an event to wait on."""

    def __init__(self) -> None:
        self.updated: list[str] = []
        self.arrived = asyncio.Event()

    async def __call__(self, message: Any) -> None:
        inner = getattr(message, "root", message)
        if getattr(inner, "method", None) == "notifications/resources/updated":
            self.updated.append(str(inner.params.uri))
            self.arrived.set()


def _texts(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


def describe(error: BaseException) -> str:
    """The innermost errors of an exception (group), as `Type: message` lines."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


async def _outcome(scenario: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    try:
        return {"ok": await asyncio.wait_for(scenario(), CALL_TIMEOUT)}
    except Exception as error:  # recorded, so a proxied run can be compared with a direct one
        return {"error": describe(error)}


async def drive(target: Any) -> dict[str, Any]:
    """Run every scenario against `target` (anything `mcp.Client` accepts) and return the outcomes."""
    notifications = Notifications()
    client = Client(
        target, mode="legacy", sampling_callback=answer_sampling, message_handler=notifications, read_timeout_seconds=30
    )
    outcomes: dict[str, Any] = {}
    async with client:

        async def tools() -> list[str]:
            return sorted(tool.name for tool in (await client.list_tools()).tools)

        async def echo() -> list[str]:
            return _texts(await client.call_tool("echo", {"message": "hello through shadowproxy"}))

        async def long_running() -> dict[str, Any]:
            progress: list[list[float | None]] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append([value, total])

            result = await client.call_tool(
                "trigger-long-running-operation", {"duration": 0.5, "steps": 5}, progress_callback=on_progress
            )
            return {"result": _texts(result), "progress": progress}

        async def sampling() -> list[str]:
            return _texts(await client.call_tool("trigger-sampling-request", {"prompt": "capital of France?"}))

        async def subscription() -> dict[str, Any]:
            await client.subscribe_resource(SUBSCRIBED_URI)
            await client.call_tool("toggle-subscriber-updates")
            try:
                await asyncio.wait_for(notifications.arrived.wait(), NOTIFICATION_WAIT)
            finally:
                await client.call_tool("toggle-subscriber-updates")
                await client.unsubscribe_resource(SUBSCRIBED_URI)
            return {"updated": sorted(set(notifications.updated))}

        for name, scenario in [
            ("tools", tools),
            ("echo", echo),
            ("long_running", long_running),
            ("sampling", sampling),
            ("subscription", subscription),
        ]:
            outcomes[name] = await _outcome(scenario)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Parse the target, drive it, write the outcomes; exit 1 only if the client could not connect at all."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--http", help="Streamable HTTP URL")
    target.add_argument("--sse", help="legacy HTTP+SSE URL (the /sse endpoint)")
    target.add_argument("--stdio", help="command line of a stdio server")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    # server-everything speaks the handshake era, where resources/subscribe is current.
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
    if args.stdio:
        command, *rest = shlex.split(args.stdio)
        server: Any = StdioServerParameters(command=command, args=rest)
    elif args.sse:
        server = sse_client(args.sse)
    else:
        server = args.http
    try:
        outcomes = asyncio.run(drive(server))
    except Exception as error:
        outcomes = {"connect": {"error": describe(error)}}
    args.out.write_text(json.dumps(outcomes, indent=2, sort_keys=True) + "\n")
    return 1 if "connect" in outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
