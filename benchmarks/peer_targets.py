"""The peers as targets: each brought up in front of the fast server the way its documentation says.

Every setup is an async context manager yielding a :class:`~benchmarks.targets.Target` (see ``targets.py``);
each takes the :class:`~benchmarks.peer.Installed` peer it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from benchmarks.contextforge import contextforge_http
from benchmarks.peer import Installed
from benchmarks.targets import Launcher, Target, free_port, http_server, server_argv

FASTMCP_PROXY = Path(__file__).resolve().with_name("fastmcp_proxy.py")

__all__ = ["contextforge_http", "fastmcp_http", "mcp_proxy_http", "stdio_client", "supergateway_http"]


@contextlib.asynccontextmanager
async def mcp_proxy_http(launcher: Launcher, peer: Installed) -> AsyncIterator[Target]:
    """``mcp-proxy --port P -- <fast stdio server>``: its Streamable HTTP endpoint in front of the stdio server."""
    port = free_port()
    argv = [str(peer.command), "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]
    async with launcher.process("mcp-proxy", [*argv, "--", *server_argv("stdio")]) as process:
        await launcher.wait_http("mcp-proxy", process, port, "/mcp")
        yield Target(url=f"http://127.0.0.1:{port}/mcp", roots=[process.pid], front=process.pid)


@contextlib.asynccontextmanager
async def fastmcp_http(launcher: Launcher, peer: Installed, upstream: str, reuse: bool) -> AsyncIterator[Target]:
    """``FastMCP.as_proxy`` over Streamable HTTP, in front of the stdio or the HTTP fast server."""
    async with contextlib.AsyncExitStack() as stack:
        roots: list[int] = []
        if upstream == "stdio":
            backend = server_argv("stdio")
        else:
            server = await stack.enter_async_context(http_server(launcher, "http"))
            assert server.url is not None
            backend, roots = [server.url], server.roots
        port = free_port()
        name = f"fastmcp-{upstream}{'-reuse' if reuse else ''}"
        argv = [str(peer.command), str(FASTMCP_PROXY), "--port", str(port), "--backend", upstream]
        argv += ["--reuse"] if reuse else []
        process = await stack.enter_async_context(launcher.process(name, [*argv, "--", *backend]))
        await launcher.wait_http(name, process, port, "/mcp")
        yield Target(url=f"http://127.0.0.1:{port}/mcp", roots=[process.pid, *roots], front=process.pid)


@contextlib.asynccontextmanager
async def supergateway_http(launcher: Launcher, peer: Installed) -> AsyncIterator[Target]:
    """``supergateway --stdio <server> --outputTransport streamableHttp --stateful``: one child per session."""
    port = free_port()
    argv = [
        str(peer.command),
        "--stdio",
        " ".join(server_argv("stdio")),
        "--outputTransport",
        "streamableHttp",
        "--stateful",
        "--port",
        str(port),
        "--logLevel",
        "none",
    ]
    async with launcher.process("supergateway", argv) as process:
        await launcher.wait_http("supergateway", process, port, "/mcp")
        yield Target(url=f"http://127.0.0.1:{port}/mcp", roots=[process.pid], front=process.pid)


@contextlib.asynccontextmanager
async def stdio_client(launcher: Launcher, peer: Installed, reuse: bool = False) -> AsyncIterator[Target]:
    """The peer's stdio-to-Streamable-HTTP mode, launched by the load client, in front of the aiohttp fast server."""
    async with http_server(launcher, "http") as server:
        assert server.url is not None
        name = peer.package.name
        if name == "mcp-proxy":
            argv = [str(peer.command), "--transport", "streamablehttp", server.url]
        elif name == "supergateway":
            argv = [str(peer.command), "--streamableHttp", server.url, "--logLevel", "none"]
        else:  # FastMCP: the same script, serving stdio
            argv = [str(peer.command), str(FASTMCP_PROXY), "--stdio", "--backend", "http"]
            argv += [*(["--reuse"] if reuse else []), "--", server.url]
        yield Target(argv=argv, roots=server.roots)
