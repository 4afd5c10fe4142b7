"""A bare stdio MCP server that sleeps ``argv[1]`` seconds before it serves: a server slow to start, without the
SDK's own start-up cost (about a second of imports) hiding what the proxy does in parallel."""

from __future__ import annotations

import json
import sys
import time

time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)
for line in sys.stdin:
    message = json.loads(line)
    method, params = message.get("method"), message.get("params") or {}
    if "id" not in message or method is None:
        continue
    if method == "initialize":
        result: object = {
            "protocolVersion": params.get("protocolVersion"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "slow-start"},
        }
    elif method == "tools/list":
        result = {"tools": [{"name": "noop", "inputSchema": {"type": "object"}}]}
    else:
        result = {}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}) + "\n")
    sys.stdout.flush()
