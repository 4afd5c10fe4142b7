"""A stdio MCP server that floods: tool ``flood`` writes COUNT log notifications of about 1 KiB, then answers.

Written by hand, not with the SDK, so the flood comes as fast as a pipe takes it.
"""

from __future__ import annotations

import json
import sys

PAD = "x" * 1000


def main() -> None:
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if "id" not in message:
            continue
        method = message.get("method")
        result: dict[str, object] = {}
        if method == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}, "logging": {}},
                "serverInfo": {"name": "flood", "version": "1"},
            }
        elif method == "tools/call":
            count = message["params"]["arguments"].get("count", 0)
            log = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": PAD}}
            line_out = json.dumps(log).encode() + b"\n"
            for _ in range(count):
                out.write(line_out)
            result = {"content": [{"type": "text", "text": f"flooded {count}"}]}
        out.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
