"""A stdio MCP server without the SDK whose one tool, ``add``, answers with the ``params._meta`` its call arrived
with (as JSON text): what a stdio server is told of the trace it is part of."""

from __future__ import annotations

import json
import sys

TOOLS = {"tools": [{"name": "add", "inputSchema": {"type": "object"}}]}


def answer(message: dict[str, object]) -> object:
    method = message["method"]
    params = message.get("params")
    if method == "initialize":
        info = {"name": "meta-echo", "version": "1"}
        version = params.get("protocolVersion", "2025-11-25") if isinstance(params, dict) else "2025-11-25"
        return {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": info}
    if method == "tools/list":
        return TOOLS
    if method == "tools/call":
        meta = params.get("_meta", {}) if isinstance(params, dict) else {}
        return {"content": [{"type": "text", "text": json.dumps(meta)}]}
    return {}


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line) if line.strip() else {}
        if "id" in message and "method" in message:
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": answer(message)}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
