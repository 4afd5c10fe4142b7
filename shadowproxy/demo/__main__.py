"""The demo server behind ``shadowproxy run --demo``: three tools, on the MCP SDK's own server over stdio.

Built on the SDK so that it is a valid server of every protocol era it claims: the
``initialize`` handshake (2024-11-05 to 2025-11-25) and 2026-07-28 requests, whose
results carry ``resultType``, ``cacheScope`` and ``ttlMs``. A hand-written server
got the latter wrong and the SDK's default client refused its answers.
"""

from __future__ import annotations

import time as clock

from mcp.server import MCPServer

from shadowproxy import __version__

server = MCPServer("shadowproxy-demo", version=__version__)


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@server.tool()
def time() -> str:
    """The server's clock, UTC."""
    return clock.strftime("%Y-%m-%dT%H:%M:%SZ", clock.gmtime())


def main() -> None:
    server.run()


if __name__ == "__main__":
    main()
