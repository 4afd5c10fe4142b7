"""A stdio MCP server whose ``big`` tool answers with ``size`` bytes of text, for tests of large answers."""

from __future__ import annotations

import sys

import orjson

out = sys.stdout.buffer

for line in sys.stdin.buffer:
    message = orjson.loads(line)
    method, params = message.get("method"), message.get("params") or {}
    if "id" not in message or method is None:
        continue
    if method == "initialize":
        info = {
            "protocolVersion": params.get("protocolVersion"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "big"},
        }
        result: object = info
    elif method == "tools/call":
        size = int(params.get("arguments", {}).get("size", 0))
        result = {"content": [{"type": "text", "text": "x" * size}], "isError": False}
    else:
        result = {}
    out.write(orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}) + b"\n")
    out.flush()
