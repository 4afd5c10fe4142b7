"""A stdio MCP server with three tools, written without the SDK so the base install can run it.

It speaks both protocol eras: the ``initialize`` handshake, and 2026-07-28
requests that carry their version in ``_meta`` (``server/discover`` included).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson

VERSIONS = ("2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
INFO = {"name": "shadowproxy-demo", "version": "1.0"}
TOOLS = [
    {
        "name": "echo",
        "description": "Echo the text back.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
    {
        "name": "add",
        "description": "Add two numbers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
    {"name": "time", "description": "The server's clock, UTC.", "inputSchema": {"type": "object"}},
]


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


def call_tool(params: dict[str, Any]) -> dict[str, Any]:
    name, args = params.get("name"), params.get("arguments") or {}
    if name == "echo":
        return text(str(args.get("text", "")))
    if name == "add":
        return text(str(args.get("a", 0) + args.get("b", 0)))
    if name == "time":
        return text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return {"content": [{"type": "text", "text": f"unknown tool {name!r}"}], "isError": True}


def handle(message: dict[str, Any]) -> dict[str, Any] | None:
    method, params = message.get("method"), message.get("params") or {}
    if "id" not in message or method is None:
        return None
    capabilities = {"tools": {}}
    if method == "initialize":
        asked = params.get("protocolVersion")
        result: Any = {
            "protocolVersion": asked if asked in VERSIONS[1:] else VERSIONS[1],
            "capabilities": capabilities,
            "serverInfo": INFO,
        }
    elif method == "server/discover":
        result = {"supportedVersions": list(VERSIONS[:1]), "capabilities": capabilities, "serverInfo": INFO}
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        result = call_tool(params)
    else:
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": f"no method {method}"}}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def main() -> None:
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            reply: Any = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
        else:
            reply = handle(message) if isinstance(message, dict) else None
        if reply is not None:
            out.write(orjson.dumps(reply) + b"\n")
            out.flush()


if __name__ == "__main__":
    main()
