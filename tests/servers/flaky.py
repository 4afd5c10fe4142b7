"""A tiny stdio MCP server whose health the tests control through files in ``$FLAKY_DIR``.

* every start appends the process id to ``starts``;
* ``dead`` exists: exit with code 1 at once, before reading anything;
* ``mute`` exists: read requests but answer none (a server that hangs);
* tools: ``pid`` (its process id) and ``crash`` (exit with code 3 mid-request).

Standard library only, so it starts in a blink.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STATE = Path(os.environ["FLAKY_DIR"])


def reply(request_id: object, result: dict[str, object]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n")
    sys.stdout.flush()


def answer(method: str, params: dict[str, object]) -> dict[str, object]:
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "flaky", "version": "1"},
        }
    if method == "server/discover":
        return {"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}}
    if method == "tools/list":
        return {"tools": [{"name": name, "inputSchema": {"type": "object"}} for name in ("pid", "crash")]}
    if method == "tools/call":
        if params.get("name") == "crash":
            os._exit(3)
        return {"content": [{"type": "text", "text": str(os.getpid())}]}
    return {}


def main() -> None:
    with (STATE / "starts").open("a") as starts:
        starts.write(f"{os.getpid()}\n")
    if (STATE / "dead").exists():
        sys.exit(1)
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message or "method" not in message or (STATE / "mute").exists():
            continue
        reply(message["id"], answer(message["method"], message.get("params") or {}))


if __name__ == "__main__":
    main()
