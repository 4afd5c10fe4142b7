"""A stdio MCP server that misbehaves on request, for the fault-injection tests.

Tools (``tools/call`` name): ``echo``; ``hang`` (never answers); ``garbage`` (non-JSON, invalid UTF-8 and
non-JSON-RPC lines, then the answer); ``split`` (the answer in two writes); ``half_exit`` (half a line, then
exit); ``crash`` (a progress notification, then exit 3); ``flood`` (``count`` log notifications, then the answer);
``drip`` (``count`` notifications 10 ms apart, then the answer); ``flood_later`` (the answer, then ``count``
unsolicited notifications and a final ``notifications/done``). With ``RECORD=path`` every line received is
appended to that file.
"""

from __future__ import annotations

import os
import sys
import time

import orjson

record = open(os.environ["RECORD"], "ab") if "RECORD" in os.environ else None
out = sys.stdout.buffer


def write(data: object) -> None:
    out.write(orjson.dumps(data) + b"\n")
    out.flush()


def text(value: str) -> dict[str, object]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


def log(index: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": index}}


def call(request_id: object, name: str, arguments: dict[str, object]) -> None:
    count = int(arguments.get("count", 0))  # type: ignore[call-overload]
    answer = {"jsonrpc": "2.0", "id": request_id, "result": text(f"{name} done")}
    if name == "echo":
        write({"jsonrpc": "2.0", "id": request_id, "result": text(str(arguments.get("text", "")))})
    elif name == "hang":
        return
    elif name == "garbage":
        out.write(b"this is not json\n\xff\xfe\xfd invalid utf-8\n[1, 2\n{}\n" + b'{"jsonrpc": "2.0"}\n')
        write({"jsonrpc": "2.0", "id": request_id + 1000 if isinstance(request_id, int) else "x", "result": {}})
        write(answer)
    elif name == "split":
        raw = orjson.dumps(answer) + b"\n"
        out.write(raw[:17])
        out.flush()
        time.sleep(0.2)
        out.write(raw[17:])
        out.flush()
    elif name == "half_exit":
        out.write(orjson.dumps(answer)[:20])
        out.flush()
        os._exit(0)
    elif name == "crash":
        write({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "error", "data": "dying"}})
        os._exit(3)
    elif name in ("flood", "drip"):
        for index in range(count):
            write(log(index))
            if name == "drip":
                time.sleep(0.01)
        write(answer)
    elif name == "flood_later":
        write(answer)
        for index in range(count):
            write(log(index))
        write({"jsonrpc": "2.0", "method": "notifications/done", "params": {"count": count}})


for line in sys.stdin.buffer:
    if record is not None:
        record.write(line)
        record.flush()
    message = orjson.loads(line)
    method, params = message.get("method"), message.get("params") or {}
    if method == "initialize":
        version = params.get("protocolVersion")
        info = {"protocolVersion": version, "capabilities": {"tools": {}, "logging": {}}, "serverInfo": {"name": "r"}}
        write({"jsonrpc": "2.0", "id": message["id"], "result": info})
    elif method == "tools/call":
        call(message["id"], params.get("name", ""), params.get("arguments") or {})
    elif method == "ping":
        write({"jsonrpc": "2.0", "id": message["id"], "result": {}})
    elif "id" in message and method is not None:
        write({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "method not found"}})
