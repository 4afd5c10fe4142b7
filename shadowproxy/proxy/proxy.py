"""The proxy assembled from its config, and the aiohttp application that serves it.

:class:`Proxy` owns the long-lived parts (store, persistence worker, chain,
upstreams, sessions) and opens and closes them as a pair. :func:`make_app` puts
each mount's endpoint on its path and builds the :class:`FrontDoor` (Host and Origin checks, authentication)
that the runner puts in front of the application.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from shadowproxy import cluster
from shadowproxy.config import Config, UpstreamConfig, limits
from shadowproxy.core import counters, logs
from shadowproxy.core.chain import Chain
from shadowproxy.core.errors import ConfigError
from shadowproxy.core.tasks import spawn
from shadowproxy.fronts import auth, legacy_sse
from shadowproxy.fronts import websocket as websocket_front
from shadowproxy.fronts.http.endpoint import StreamableHttpEndpoint
from shadowproxy.fronts.http.gate import FrontDoor
from shadowproxy.ops import admin, health
from shadowproxy.proxy.mount import Mount
from shadowproxy.proxy.plugins import load_interceptors
from shadowproxy.sessions.manager import SessionManager
from shadowproxy.sessions.persistence import PersistenceWorker
from shadowproxy.stores import open_store
from shadowproxy.upstreams import StdioUpstream, create_upstream

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.Response]]

PROXY_KEY = web.AppKey("proxy", "Proxy")
FRONT_DOOR_KEY = web.AppKey("front_door", FrontDoor)
"""The server's request handler (Host, Origin, auth, the MCP POST path), installed by the runner."""


class Proxy:
    """Everything one proxy process runs, opened by :meth:`start` and closed by :meth:`stop`."""

    def __init__(self, config: Config) -> None:
        if not config.upstreams:
            raise ConfigError("no upstream: give --upstream, a config file with upstreams, or --demo", key="upstreams")
        self.config = config
        self.store = open_store(
            config.store,
            ttl=config.session_ttl,
            max_events=config.event_log_size,
            max_event_age=config.event_log_age,
        )
        self.worker = PersistenceWorker(self.store, flush_interval=config.flush_interval, batch_size=config.batch_size)
        self.chain = Chain(load_interceptors(config.interceptors, config.rules))
        self.sessions = SessionManager(self.worker, ttl=config.session_ttl, store=self.store)
        self.guard = limits.Guard(config.limits)
        # One upstream per server even where a lone server is mounted at two paths: one pool, one stateless child.
        upstreams = {upstream.name: create_upstream(upstream) for upstream in config.upstreams}
        self.mounts = [
            Mount(path, upstreams[upstream.name], self.chain, self.sessions)
            for path, upstream in mount_paths(config.path, config.upstreams)
        ]
        self.endpoints = [
            StreamableHttpEndpoint(
                mount,
                guard=self.guard,
                request_timeout=config.request_timeout,
                keepalive=config.keepalive_interval,
                retry=config.sse_retry,
                poll_after=config.poll_after,
                stream_after=config.stream_after,
            )
            for mount in self.mounts
        ]
        self.draining = False
        self._sweeper: asyncio.Task[None] | None = None
        self.monitors = health.monitors(list(upstreams.values()), config.health)
        self._monitoring: list[asyncio.Task[None]] = []
        self.cluster = cluster.join(config, self.sessions, self.mounts, self.chain, self.reload)

    async def start(self, *, on_demand: bool = False) -> None:
        """Open what the proxy runs. ``on_demand`` (the stdio front: one client) starts no server process ahead of
        a request and runs no health checks, which would start one: a stateful server gets no second writer."""
        await self.worker.start()  # opens the store; one that is down is reported and retried, not waited for
        if self.cluster is not None:
            await self.cluster.start()
        for hook in self.chain.startables:
            await hook.start()
        self._sweeper = spawn(self.sessions.sweep(min(60.0, self.config.session_ttl / 2)), name="session-sweeper")
        if on_demand:
            return
        for mount in self.mounts:
            if isinstance(mount.upstream, StdioUpstream):
                spawn(mount.warm(), name=f"warm-{mount.name}")
        self._monitoring = [spawn(monitor.run(), name=f"health-{name}") for name, monitor in self.monitors.items()]

    async def reload(self) -> bool:
        """Reload every hook that can (the rules); true when all took their new configuration."""
        results = [await hook.reload() for hook in self.chain.reloadables]
        return all(results)

    async def stop(self) -> None:
        """Detach sessions (they stay alive in the store), close upstreams and interceptors, flush the store."""
        self.draining = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in self._monitoring:
            task.cancel()
        await asyncio.gather(*self._monitoring, return_exceptions=True)
        await self.sessions.detach_all()
        if self.cluster is not None:
            await self.cluster.stop()
        await asyncio.gather(*(mount.close() for mount in self.mounts))
        for hook in self.chain.closables:
            await hook.close()
        await self.worker.stop()
        await self.store.close()


def mount_paths(base: str, upstreams: tuple[UpstreamConfig, ...]) -> list[tuple[str, UpstreamConfig]]:
    """Each server at ``base/<name>``; the only one also at ``base`` itself."""
    if len(upstreams) == 1:
        only = upstreams[0]
        paths = [(base, only)]
        if only.name != "default":
            paths.append((f"{base}/{only.name}", only))
        return paths
    return [(f"{base}/{upstream.name}", upstream) for upstream in upstreams]


async def tag_response(request: web.Request, response: web.StreamResponse) -> None:
    """``X-Request-Id`` on every answer the router serves, streamed ones too (the front door tags its own)."""
    logs.tag(response.headers)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    proxy = request.app[PROXY_KEY]
    if proxy.draining:
        return web.json_response({"status": "draining"}, status=503)
    in_flight = sum(endpoint.in_flight for endpoint in proxy.endpoints)
    upstreams = {name: monitor.report() for name, monitor in proxy.monitors.items()}
    unready = sorted(name for name, monitor in proxy.monitors.items() if not monitor.ready)
    store = health.store_report(proxy.worker)
    failing = store["status"] != "ok"
    body = {
        "status": "unready" if unready else "degraded" if failing else "ready",
        "sessions": len(proxy.sessions),
        "in_flight": in_flight,
        "upstreams": upstreams,
        "store": store,
        "tasks": task_census(),
    }
    problems = [f"upstream {name}: {describe(upstreams[name])}" for name in unready]
    if failing:
        problems.append(f"store: {health.describe_store(store)}")
    if problems:
        body["problems"] = problems
    return web.json_response(body, status=503 if unready else 200)


def describe(report: dict[str, object]) -> str:
    if report["circuit"] == "open":
        return f"circuit open (new sessions refused for {report['retry_after']}s) after: {report['problem']}"
    return f"down: {report['problem']}"


def task_census() -> dict[str, int]:
    """Live asyncio tasks by coroutine, so a leak names itself."""
    census = Counter(getattr(task.get_coro(), "__qualname__", "?") for task in asyncio.all_tasks())
    census["total"] = sum(census.values())
    return dict(census)


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
    app = web.Application(client_max_size=config.max_body_size)
    app[PROXY_KEY] = proxy
    app[FRONT_DOOR_KEY] = FrontDoor(proxy)
    limits.install(app, proxy.guard)
    for endpoint in proxy.endpoints:
        app.router.add_route("*", endpoint.mount.path, endpoint.handle)
    listing = mount_listing(proxy)
    for path in {config.path, "/"} - {mount.path for mount in proxy.mounts}:
        app.router.add_route("*", path, listing)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    counters.register(app, proxy)
    admin.register(app, proxy)
    legacy_sse.add_routes(app, proxy)
    websocket_front.add_routes(app, proxy)
    app.router.add_get(auth.METADATA_ROUTE, auth.metadata(config))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await proxy.start()
        yield
        await proxy.stop()

    async def drain(app: web.Application) -> None:
        proxy.draining = True
        app[FRONT_DOOR_KEY].drain()
        for endpoint in proxy.endpoints:
            endpoint.close_streams()

    app.on_shutdown.append(drain)
    app.on_response_prepare.append(tag_response)
    app.cleanup_ctx.append(lifecycle)
    return app
