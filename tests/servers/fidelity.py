"""A stdio MCP server without the SDK, for the stdio front's fidelity tests: it notes each start and tells what it
was given.

``python fidelity.py [PIDFILE]`` appends its pid to PIDFILE first thing, so a test can count the processes the
proxy starts. It speaks both eras (``initialize``, and 2026-07-28's ``server/discover``). Tools: ``env`` (the
value of the variable ``name``, or ``(unset)``), ``pid``, ``echo``, ``slow`` (sleeps ``seconds``, then answers).
"""

from __future__ import annotations

import os
import sys

if len(sys.argv) > 1:
    with open(sys.argv[1], "a") as pids:
        pids.write(f"{os.getpid()}\n")

# Imported after the pid is noted: a start is counted however it ends.
import json
import time

INFO = {"name": "fidelity", "version": "1"}
TOOLS = ("env", "pid", "echo", "slow")


def answer(message: dict[str, object]) -> dict[str, object]:
    method = message["method"]
    params = message.get("params") or {}
    assert isinstance(params, dict)
    if method == "initialize":
        return {"protocolVersion": params.get("protocolVersion"), "capabilities": {"tools": {}}, "serverInfo": INFO}
    if method == "server/discover":
        return {"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "serverInfo": INFO}
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": [{"name": name, "inputSchema": {"type": "object"}} for name in TOOLS]}
    if method != "tools/call":
        raise LookupError(method)
    arguments = params.get("arguments") or {}
    name = params.get("name")
    if name == "env":
        text = os.environ.get(arguments["name"], "(unset)")
    elif name == "pid":
        text = str(os.getpid())
    elif name == "slow":
        time.sleep(float(arguments["seconds"]))
        text = f"slept {arguments['seconds']}"
    else:
        text = str(arguments.get("text"))
    return {"content": [{"type": "text", "text": text}], "isError": False}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue
        reply: dict[str, object] = {"jsonrpc": "2.0", "id": message["id"]}
        try:
            reply["result"] = answer(message)
        except LookupError as exc:
            reply["error"] = {"code": -32601, "message": f"no method {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
