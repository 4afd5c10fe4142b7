"""A small stdio MCP server for the limits tests: it reports its resource limits and misbehaves on request.

Tools (``tools/call`` name): ``echo``; ``rlimits`` (its CPU, address-space and open-file limits, as JSON);
``big`` (an answer of ``size`` bytes, in one line); ``deep`` (an answer nested ``depth`` levels);
``allocate`` (``size`` bytes of memory, then ``allocated``,
or ``MemoryError`` as a tool error); ``stderr`` (``count`` lines on stderr, then the answer); ``hang``.
"""

from __future__ import annotations

import resource
import sys

import orjson

out = sys.stdout.buffer


def write(data: object) -> None:
    out.write(orjson.dumps(data) + b"\n")
    out.flush()


def text(value: str, error: bool = False) -> dict[str, object]:
    return {"content": [{"type": "text", "text": value}], "isError": error}


def call(request_id: object, name: str, arguments: dict[str, object]) -> None:
    size = int(arguments.get("size", 0))  # type: ignore[call-overload]
    if name == "echo":
        write({"jsonrpc": "2.0", "id": request_id, "result": text(str(arguments.get("text", "")))})
    elif name == "rlimits":
        found = {
            key: resource.getrlimit(which)[0]
            for key, which in (("cpu", resource.RLIMIT_CPU), ("memory", resource.RLIMIT_AS))
        }
        found["files"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        write({"jsonrpc": "2.0", "id": request_id, "result": text(orjson.dumps(found).decode())})
    elif name == "big":
        write({"jsonrpc": "2.0", "id": request_id, "result": text("x" * size)})
    elif name == "deep":
        nest: object = []
        for _ in range(int(arguments.get("depth", 1))):  # type: ignore[call-overload]
            nest = [nest]
        write({"jsonrpc": "2.0", "id": request_id, "result": {**text("deep"), "structuredContent": {"x": nest}}})
    elif name == "allocate":
        try:
            block = bytearray(size)
        except MemoryError:
            write({"jsonrpc": "2.0", "id": request_id, "result": text("MemoryError", error=True)})
            return
        write({"jsonrpc": "2.0", "id": request_id, "result": text(f"allocated {len(block)}")})
    elif name == "stderr":
        for index in range(int(arguments.get("count", 0))):  # type: ignore[call-overload]
            sys.stderr.write(f"noise {index}\n")
        sys.stderr.flush()
        write({"jsonrpc": "2.0", "id": request_id, "result": text("said")})


for line in sys.stdin.buffer:
    message = orjson.loads(line)
    method, params = message.get("method"), message.get("params") or {}
    if method == "initialize":
        version = params.get("protocolVersion")
        info = {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": {"name": "limits"}}
        write({"jsonrpc": "2.0", "id": message["id"], "result": info})
    elif method == "tools/call":
        call(message["id"], params.get("name", ""), params.get("arguments") or {})
    elif method == "ping":
        write({"jsonrpc": "2.0", "id": message["id"], "result": {}})
    elif "id" in message and method is not None:
        write({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "method not found"}})
