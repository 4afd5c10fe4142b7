"""A stdio MCP server with large answers, for ``benchmarks.large``: ``python benchmarks/largeserver.py``.

``tools/list`` lists 200 tools (about 53 KB, each with a description and a small input schema, as a real server's
list looks), and the ``blob`` tool answers ``tools/call`` with a text of ``arguments.size`` bytes. Answers are
encoded once per size and kept, so the server's own cost per request is a write. Newline-delimited JSON, one
message a line; it imports nothing from this repository.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import orjson

TOOLS = 200
SERVER_INFO = {"name": "shadowproxy-bench-large", "version": "1.0.0"}


def tool(index: int) -> dict[str, Any]:
    return {
        "name": f"records_{index}",
        "description": f"Reads page {index} of a project's records, filtered by a query.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what to look for"},
                "limit": {"type": "integer", "minimum": 1},
            },
            "required": ["query"],
        },
    }


def tools_list(request_id: Any, count: int = TOOLS) -> bytes:
    """The ``tools/list`` answer: ``count`` tools, about 265 bytes each."""
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": {"tools": [tool(i) for i in range(count)]}})


def text_result(request_id: Any, size: int) -> bytes:
    """A ``tools/call`` answer carrying ``size`` bytes of text."""
    result = {"content": [{"type": "text", "text": "x" * size}], "isError": False}
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


class Answers:
    """Each large answer encoded once, with a placeholder id replaced per request (the bytes around it kept)."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, int], tuple[bytes, bytes]] = {}

    def made(self, key: tuple[str, int], request_id: Any) -> bytes:
        halves = self.cache.get(key)
        if halves is None:
            method, size = key
            whole = tools_list(0) if method == "tools/list" else text_result(0, size)
            marker = b'"id":0,'
            at = whole.index(marker)
            halves = self.cache[key] = (whole[: at + 5], whole[at + 6 :])
        return halves[0] + orjson.dumps(request_id) + halves[1]

    def answer(self, line: bytes) -> bytes | None:
        message = orjson.loads(line)
        method, request_id = message.get("method"), message.get("id")
        if request_id is None or method is None:
            return None
        params = message.get("params") or {}
        if method == "initialize":
            result = {"protocolVersion": params.get("protocolVersion"), "capabilities": {"tools": {}}}
            return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": {**result, "serverInfo": SERVER_INFO}})
        if method == "tools/list":
            return self.made(("tools/list", 0), request_id)
        if method == "tools/call":
            return self.made(("blob", int((params.get("arguments") or {}).get("size", 0))), request_id)
        return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": {}})


def main() -> None:
    answers = Answers()
    pending = b""
    while chunk := os.read(0, 1 << 20):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        replies = [reply for line in lines if line.strip() and (reply := answers.answer(line)) is not None]
        if replies:
            out = memoryview(b"\n".join(replies) + b"\n")
            while out:
                out = out[os.write(1, out) :]


if __name__ == "__main__":
    sys.exit(main())
