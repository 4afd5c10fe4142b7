"""``shadowproxy tools list [SERVER]`` and ``shadowproxy tools call SERVER TOOL --args JSON``: a running proxy's
tools, through its REST facade (``/v1/mcp/servers``), so the chain and the rules apply as to any client.

Exit codes: 0 done (a tool's own error too, with ``isError`` printed); 1 the proxy said no (blocked, unknown
server or tool, bad arguments); 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp

TOKEN_ENV = "SHADOWPROXY_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8765"
PREFIX = "/v1/mcp/servers"
TIMEOUT = 300.0
EXAMPLES = f"""examples (with `shadowproxy run --config shadowproxy/demo/gateway.yaml` running):
  shadowproxy tools list                              # every server's tools, a table
  shadowproxy tools list all --json
  shadowproxy tools call all plus --args '{{"a": 2, "b": 3}}'

a client token, when the proxy has auth: --token or ${TOKEN_ENV}.
exit codes: 0 done (a tool error too); 1 the proxy said no (blocked, unknown, bad arguments); 2 usage or connection.
"""


class Unreachable(Exception):
    """No usable answer from the proxy (exit 2)."""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    formatter = argparse.RawDescriptionHelpFormatter
    tools = commands.add_parser("tools", help="list or call a running proxy's tools", epilog=EXAMPLES,
                                formatter_class=formatter)  # fmt: skip
    actions = tools.add_subparsers(dest="tools_command", metavar="{list,call}", required=True)
    listing = actions.add_parser("list", help="the tools of one server, or of all", epilog=EXAMPLES,
                                 formatter_class=formatter)  # fmt: skip
    listing.add_argument("server", nargs="?", metavar="SERVER", help="a mount or virtual server (default: all)")
    calling = actions.add_parser("call", help="call one tool", epilog=EXAMPLES, formatter_class=formatter)
    calling.add_argument("server", metavar="SERVER")
    calling.add_argument("tool", metavar="TOOL")
    calling.add_argument("--args", default="{}", help="the arguments, a JSON object")
    for action in (listing, calling):
        action.add_argument("--url", default=DEFAULT_URL, help=f"the proxy's base URL (default {DEFAULT_URL})")
        action.add_argument("--token", help=f"a client token (default: ${TOKEN_ENV})")
        action.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=lambda args: run(list_tools(args)))
    calling.set_defaults(handler=lambda args: run(call_tool(args)))


def run(work: Any) -> int:
    try:
        return int(asyncio.run(work))
    except Unreachable as exc:
        print(f"shadowproxy: {exc}", file=sys.stderr)
        return 2


async def fetch(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    token = args.token or os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as client,
            client.request(method, args.url.rstrip("/") + PREFIX + path, json=body, headers=headers) as response,
        ):
            answer = await response.json() if response.content_type == "application/json" else None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Unreachable(f"cannot reach the proxy at {args.url}: {exc or exc.__class__.__name__}") from None
    if response.status == 401:
        raise Unreachable("the proxy wants a client token: give --token or set " + TOKEN_ENV)
    if answer is None:
        raise Unreachable(f"no REST facade at {args.url} (HTTP {response.status})")
    return response.status, answer


def refused(status: int, answer: Any) -> int:
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    print(f"shadowproxy: HTTP {status}: {error.get('message', answer)}", file=sys.stderr)
    return 1


async def list_tools(args: argparse.Namespace) -> int:
    if args.server:
        servers = [args.server]
    else:
        status, answer = await fetch(args, "GET", "")
        servers = [server["name"] for server in answer.get("servers", [])]
    listed: dict[str, Any] = {}
    for server in servers:
        status, answer = await fetch(args, "GET", f"/{server}/tools")
        if status != 200:
            return refused(status, answer)
        listed[server] = answer["tools"]
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    for server, tools in listed.items():
        for tool in tools:
            description = (tool.get("description") or "").strip().split("\n", 1)[0]
            print(f"{server:<16} {tool.get('name', ''):<32} {description[:70]}")
    return 0


async def call_tool(args: argparse.Namespace) -> int:
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        raise Unreachable(f"--args is not JSON: {exc}") from None
    status, answer = await fetch(args, "POST", f"/{args.server}/tools/{args.tool}", arguments)
    if status != 200:
        return refused(status, answer)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    for item in answer.get("content", []):
        print(item.get("text") if item.get("type") == "text" else json.dumps(item))
    if answer.get("isError"):
        print("(the tool answered with an error)", file=sys.stderr)
    return 0
