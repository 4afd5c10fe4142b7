"""A small stdio MCP server for the tests: ``hold`` calls wait for ``notifications/release``.

With ``RECORD=path`` in its environment it appends every line it receives to that file, so a test can see
exactly what the proxy sent upstream.
"""

from __future__ import annotations

import os
import sys

import orjson

record = open(os.environ["RECORD"], "ab") if "RECORD" in os.environ else None
held: list[object] = []
out = sys.stdout.buffer


def reply(request_id: object, result: object) -> None:
    out.write(orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + b"\n")
    out.flush()


def text(value: str) -> dict[str, object]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


for line in sys.stdin.buffer:
    if record is not None:
        record.write(line)
        record.flush()
    message = orjson.loads(line)
    method, params = message.get("method"), message.get("params") or {}
    if method == "initialize":
        version = params.get("protocolVersion")
        reply(message["id"], {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": {"name": "h"}})
    elif method == "server/discover":
        versions = ["2025-11-25", "2026-07-28"]
        reply(
            message["id"], {"supportedVersions": versions, "capabilities": {"tools": {}}, "serverInfo": {"name": "h"}}
        )
    elif method == "tools/list":
        reply(message["id"], {"tools": [{"name": "hold", "inputSchema": {"type": "object"}}]})
    elif method == "tools/call" and params.get("name") == "hold":
        held.append(message["id"])
    elif method == "tools/call":
        reply(message["id"], text(str(params.get("arguments", {}).get("text", ""))))
    elif method == "notifications/release":
        for request_id in held:
            reply(request_id, text("released"))
        held.clear()
    elif method == "ping":
        reply(message["id"], {})
