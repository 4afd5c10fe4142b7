"""An MCP server on the official SDK that writes each tool call it receives to ``RECORD`` (one JSON line each),
so a test can tell what reached it."""

from __future__ import annotations

import os

import orjson
from mcp.server import MCPServer

server = MCPServer("recorder")


def _record(name: str, arguments: dict[str, object]) -> None:
    with open(os.environ["RECORD"], "ab") as record:
        record.write(orjson.dumps({"tool": name, "arguments": arguments}) + b"\n")


@server.tool()
def pay(amount: int, to: str) -> str:
    """Pay someone."""
    _record("pay", {"amount": amount, "to": to})
    return f"paid {amount} to {to}"


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    _record("echo", {"text": text})
    return text


if __name__ == "__main__":
    server.run()
