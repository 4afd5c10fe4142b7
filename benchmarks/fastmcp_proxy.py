"""FastMCP's proxy over Streamable HTTP, run by the ``fastmcp`` peer's own Python (not this project's).

    <fastmcp venv>/bin/python benchmarks/fastmcp_proxy.py --port P --backend stdio|http [--reuse] -- <cmd or URL>
    <fastmcp venv>/bin/python benchmarks/fastmcp_proxy.py --stdio --backend http [--reuse] -- <URL>

``--stdio`` serves the proxy on stdin/stdout instead of Streamable HTTP (the stdio->HTTP row).

``--backend stdio`` proxies the command after ``--`` (spawned by FastMCP), ``http`` the URL after it.
Without ``--reuse`` it is ``create_proxy(<backend transport>)`` (FastMCP 4's name for ``FastMCP.as_proxy``, which
2.x and 3.x had) with FastMCP's default client handling: a fresh backend session per request, its "session
isolation". With ``--reuse`` the proxy is built on one connected ``Client`` that every request shares, the faster
form FastMCP documents for a backend that may be shared.
A standalone script: it imports nothing of this project, so the peer's venv can run it from any directory.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from fastmcp import Client
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
from fastmcp.server import create_proxy


def backend(kind: str, target: list[str]) -> Any:
    if kind == "stdio":
        return StdioTransport(command=target[0], args=target[1:], keep_alive=True)
    return StreamableHttpTransport(target[0])


async def serve(args: argparse.Namespace) -> None:
    transport = backend(args.backend, args.target)
    http = {"transport": "http", "host": "127.0.0.1", "port": args.port, "path": "/mcp", "log_level": "warning"}
    if args.stdio:
        http = {"transport": "stdio", "log_level": "warning"}
    if args.reuse:
        async with Client(transport) as client:
            await create_proxy(client, name="bench-proxy").run_async(show_banner=False, **http)
    else:
        await create_proxy(transport, name="bench-proxy").run_async(show_banner=False, **http)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stdio", action="store_true")
    parser.add_argument("--backend", choices=("stdio", "http"), required=True)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("target", nargs="+")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
