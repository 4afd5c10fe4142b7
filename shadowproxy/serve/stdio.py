"""``shadowproxy stdio``: one MCP server on the proxy's own stdin and stdout.

Nothing here imports aiohttp: in front of a stdio server the proxy serves no HTTP and starts in about two thirds of
the time (``benchmarks/boot.py``); a URL upstream brings it with its transport.
"""

from __future__ import annotations

from shadowproxy.config import Config
from shadowproxy.core import jsonrpc
from shadowproxy.core.errors import ConfigError
from shadowproxy.fronts.stdio.bridge import StdioBridgeFront
from shadowproxy.fronts.stdio.child import StdioChildFront
from shadowproxy.proxy.proxy import Proxy
from shadowproxy.serve.loop import install_signals
from shadowproxy.upstreams.stdio import StdioUpstream


async def serve_stdio(config: Config, server: str | None = None) -> int:
    """Be one MCP server on our own stdin/stdout until the client closes stdin or a signal comes; ``server``
    names the upstream or virtual server to serve (default: the first upstream)."""
    jsonrpc.set_max_depth(config.limits.max_json_depth)
    proxy = Proxy(config)
    mounts = {mount.name: mount for mount in proxy.mounts}
    if server is not None and server not in mounts:
        raise ConfigError(f"no upstream or virtual server {server!r}; known: {', '.join(mounts)}", key="server")
    mount = proxy.mounts[0] if server is None else mounts[server]
    # One client, one server process (the front's child): none is started ahead for requests it may never send.
    await proxy.start(on_demand=True)
    front_class = StdioChildFront if isinstance(mount.upstream, StdioUpstream) else StdioBridgeFront
    front = front_class(mount, request_timeout=config.request_timeout)
    install_signals(front.stop)
    try:
        return await front.serve()
    finally:
        await front.close()
        await proxy.stop()
