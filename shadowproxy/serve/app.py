"""The aiohttp application that serves a :class:`~shadowproxy.proxy.proxy.Proxy`: each mount's Streamable HTTP
endpoint on its path, the WebSocket and legacy SSE fronts, health, metrics, the admin API, and the
:class:`~shadowproxy.fronts.http.gate.FrontDoor` (Host and Origin checks, authentication) that the runner puts in
front of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from shadowproxy.core import logs
from shadowproxy.fronts import auth, http_limits, legacy_sse, websocket
from shadowproxy.fronts.http.endpoint import StreamableHttpEndpoint
from shadowproxy.fronts.http.gate import FrontDoor
from shadowproxy.fronts.rest import routes as rest
from shadowproxy.ops import admin, health, metrics
from shadowproxy.proxy.proxy import Proxy

Handler = Callable[[web.Request], Awaitable[web.Response]]

FRONT_DOOR_KEY = web.AppKey("front_door", FrontDoor)
"""The server's request handler (Host, Origin, auth, the MCP POST path), installed by the runner."""


def http_endpoints(proxy: Proxy) -> list[StreamableHttpEndpoint]:
    """One Streamable HTTP endpoint per mount."""
    config = proxy.config
    return [
        StreamableHttpEndpoint(
            mount,
            guard=proxy.guard,
            request_timeout=config.request_timeout,
            keepalive=config.keepalive_interval,
            retry=config.sse_retry,
            poll_after=config.poll_after,
            stream_after=config.stream_after,
        )
        for mount in proxy.mounts
    ]


async def tag_response(request: web.Request, response: web.StreamResponse) -> None:
    """``X-Request-Id`` on every answer the router serves, streamed ones too (the front door tags its own)."""
    logs.tag(response.headers)


def mount_listing(proxy: Proxy) -> Handler:
    """A 404 that names every mount: where a client lands when it is given the base path of several servers."""
    mounts = [(mount.name, mount.path) for mount in proxy.mounts]
    paths = ", ".join(path for _, path in mounts)

    async def listing(request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        body = {
            "error": f"no MCP server at {request.path}; connect to one of: {paths}",
            "mounts": [{"name": name, "path": path, "url": base + path} for name, path in mounts],
        }
        return web.json_response(body, status=404)

    return listing


def make_app(proxy: Proxy) -> web.Application:
    config = proxy.config
    endpoints = http_endpoints(proxy)
    app = web.Application(client_max_size=config.max_body_size)
    app[FRONT_DOOR_KEY] = FrontDoor(config, endpoints, proxy.access)
    http_limits.install(app, proxy.guard)
    for endpoint in endpoints:
        app.router.add_route("*", endpoint.mount.path, endpoint.handle)
    listing = mount_listing(proxy)
    for path in {config.path, "/"} - {mount.path for mount in proxy.mounts}:
        app.router.add_route("*", path, listing)
    health.add_routes(app, proxy, endpoints)
    metrics.register(app, proxy, endpoints)
    admin.register(app, proxy)
    legacy_sse.add_routes(app, proxy)
    websocket.add_routes(app, proxy)
    rest.add_routes(app, proxy)
    app.router.add_get(auth.METADATA_ROUTE, auth.metadata(config))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await proxy.start()
        yield
        await proxy.stop()

    async def drain(app: web.Application) -> None:
        proxy.draining = True
        app[FRONT_DOOR_KEY].drain()
        for endpoint in endpoints:
            endpoint.close_streams()

    app.on_shutdown.append(drain)
    app.on_response_prepare.append(tag_response)
    app.cleanup_ctx.append(lifecycle)
    return app
