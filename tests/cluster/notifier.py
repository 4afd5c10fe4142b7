"""A small stdio MCP server for the cluster tests.

``pid`` answers with this process's id. ``later`` answers, then sends ``notifications/tools/list_changed``:
by then no request is in flight, so the proxy gets it as a message tied to no request, for the GET stream.
"""

from __future__ import annotations

import os
import sys

import orjson

out = sys.stdout.buffer


def send(message: dict[str, object]) -> None:
    out.write(orjson.dumps({"jsonrpc": "2.0", **message}) + b"\n")
    out.flush()


def text(value: str) -> dict[str, object]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


TOOLS = [{"name": name, "inputSchema": {"type": "object"}} for name in ("pid", "later")]

for line in sys.stdin.buffer:
    message = orjson.loads(line)
    method, params = message.get("method"), message.get("params") or {}
    if method == "initialize":
        version = params.get("protocolVersion")
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": "n"},
        }
        send({"id": message["id"], "result": result})
    elif method == "tools/list":
        send({"id": message["id"], "result": {"tools": TOOLS}})
    elif method == "tools/call" and params.get("name") == "pid":
        send({"id": message["id"], "result": text(str(os.getpid()))})
    elif method == "tools/call" and params.get("name") == "later":
        send({"id": message["id"], "result": text("soon")})
        send({"method": "notifications/tools/list_changed"})
    elif method == "ping":
        send({"id": message["id"], "result": {}})
    elif "id" in message and method is not None:
        send({"id": message["id"], "error": {"code": -32601, "message": f"no method {method}"}})
