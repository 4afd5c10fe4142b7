"""A bare handshake-era stdio server that tells which process it is, for the tests of spare processes.

``which_process.py DIR``: at start it writes ``DIR/<pid>.json`` (``{"pid", "first": null}``); at its first
message it writes that message as ``first``, so a test can see what a process was sent before anything else.
``initialize`` answers with the pid as ``serverInfo.version``; ``ping`` and ``tools/list`` are answered; any other
request (``server/discover`` among them: a server of before 2026-07-28) gets method-not-found.
``which_process.py DIR --exit CODE`` writes its file, then exits with CODE: a server that dies at start.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

record = Path(sys.argv[1]) / f"{os.getpid()}.json"


def write(first: object) -> None:
    partial = record.with_suffix(".tmp")
    partial.write_text(json.dumps({"pid": os.getpid(), "first": first}))
    partial.replace(record)


write(None)
if len(sys.argv) > 3 and sys.argv[2] == "--exit":
    sys.exit(int(sys.argv[3]))
seen = False
for line in sys.stdin:
    message = json.loads(line)
    if not seen:
        seen = True
        write(message)
    method, params = message.get("method"), message.get("params") or {}
    if "id" not in message or method is None:
        continue
    reply: dict[str, object] = {"jsonrpc": "2.0", "id": message["id"]}
    if method == "initialize":
        reply["result"] = {
            "protocolVersion": params.get("protocolVersion"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "which-process", "version": str(os.getpid())},
        }
    elif method == "ping":
        reply["result"] = {}
    elif method == "tools/list":
        reply["result"] = {"tools": []}
    else:
        reply["error"] = {"code": -32601, "message": f"method not found: {method}"}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
