"""A stdio MCP server without the SDK: each tool call's answer holds the exact bytes the call arrived as.

The answer also carries an integer beyond 64 bits, written by hand, so a test can see whether it survives
the way back.
"""

from __future__ import annotations

import json
import sys

BIG = "1180591620717411303425"


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue
        if message["method"] == "initialize":
            result = (
                '{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},'
                '"serverInfo":{"name":"raw-echo","version":"1"}}'
            )
        else:
            text = json.dumps(line.strip())
            result = f'{{"content":[{{"type":"text","text":{text}}}],"n":{BIG}}}'
        sys.stdout.write(f'{{"jsonrpc":"2.0","id":{json.dumps(message["id"])},"result":{result}}}\n')
        sys.stdout.flush()


if __name__ == "__main__":
    main()
