"""Running the HTTP proxy (`shadowproxy run`): listening and graceful shutdown; the loop and signals are `serve.loop`.

Shutdown order on SIGTERM or SIGINT: stop listening, let in-flight requests
finish for up to ``shutdown_timeout``, then close sessions and upstream
children, flush the persistence worker, and exit 0. A second signal exits at
once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from shadowproxy.config import Config
from shadowproxy.core import jsonrpc
from shadowproxy.core.errors import ShadowProxyError
from shadowproxy.core.tasks import spawn
from shadowproxy.fronts import http_limits
from shadowproxy.fronts.http import fast_path
from shadowproxy.ops import metrics
from shadowproxy.proxy.proxy import Proxy
from shadowproxy.serve import banner
from shadowproxy.serve.app import FRONT_DOOR_KEY, make_app
from shadowproxy.serve.loop import install_signals, run_loop
from shadowproxy.serve.stdio import serve_stdio

log = logging.getLogger(__name__)
__all__ = ["install_signals", "run_loop", "serve", "serve_stdio"]


def listen(host: str, port: int) -> socket.socket:
    """The listening socket; a port that is taken is one sentence for the operator, not a traceback."""
    try:
        return socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ShadowProxyError(
                f"port {port} on {host} is already in use (another shadowproxy?); stop that process"
                " or choose another port with --port"
            ) from None
        raise ShadowProxyError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def serve(config: Config, ready: Callable[[str], Awaitable[None]] | None = None) -> int:
    """Serve until a signal; return the exit code."""
    jsonrpc.set_max_depth(config.limits.max_json_depth)
    proxy = Proxy(config)
    app = make_app(proxy)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=config.shutdown_timeout,
        **http_limits.server_options(config.limits),
    )
    stop = asyncio.Event()
    install_signals(stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, lambda: spawn(proxy.reload(), name="reload-on-sighup"))
    sock = listen(config.host, config.port)  # before anything starts: a port in use leaves nothing to undo
    await runner.setup()
    assert runner.server is not None
    door = app[FRONT_DOOR_KEY]
    door.install(runner.server)
    metrics.watch_server(app, runner.server)
    factory = fast_path.protocols(runner.server, door.connection, config.limits.idle_timeout, config.fast_path)
    listener: asyncio.Server | None = None
    try:
        # Not one of aiohttp's sites: a site of our own would set its private _server.
        listener = await asyncio.get_running_loop().create_server(factory, sock=sock)
        port = sock.getsockname()[1]
        url = f"http://{config.host}:{port}{config.path}"
        for line in banner.lines(proxy, config.host, port):
            log.info("%s", line)
        if ready is not None:
            await ready(url)
        await stop.wait()
        proxy.draining = True
    finally:
        if listener is not None:
            # No new connections during the shutdown, as runner.cleanup() stops its sites first.
            listener.close()
        await runner.cleanup()
    log.info("stopped")
    return 0
