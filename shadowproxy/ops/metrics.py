"""The ``/metrics`` endpoint and the collector that reads the running proxy's state at scrape time.

The instruments the hot path feeds live in :mod:`shadowproxy.core.counters`; this module only reads them and
the proxy's state (sessions, streams, connections, tasks, upstream children, health) when Prometheus scrapes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shadowproxy.core import counters
from shadowproxy.core.errors import ConfigError
from shadowproxy.fronts.http.endpoint import StreamableHttpEndpoint
from shadowproxy.upstreams.stdio import StdioUpstream

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy

log = logging.getLogger(__name__)


class ProxyCollector(Collector):
    """Reads the running proxy's state at scrape time."""

    def __init__(self, proxy: Proxy, endpoints: Sequence[StreamableHttpEndpoint]) -> None:
        self.proxy = proxy
        self.endpoints = endpoints
        self.server: Any = None

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        proxy = self.proxy
        sessions = GaugeMetricFamily("shadowproxy_active_sessions", "Live sessions, by upstream.", labels=["upstream"])
        streams = GaugeMetricFamily(
            "shadowproxy_active_streams", "Open GET event streams, by upstream.", labels=["upstream"]
        )
        by_upstream: dict[str, list[int]] = {mount.name: [0, 0] for mount in proxy.mounts}
        for session in list(proxy.sessions.live.values()):
            counts = by_upstream.setdefault(session.record.upstream, [0, 0])
            counts[0] += 1
            counts[1] += session.listening
        for name, (live, listening) in sorted(by_upstream.items()):
            sessions.add_metric([name], live)
            streams.add_metric([name], listening)
        yield sessions
        yield streams
        in_flight = sum(endpoint.in_flight for endpoint in self.endpoints)
        yield GaugeMetricFamily(
            "shadowproxy_requests_in_flight", "HTTP requests waiting for their upstream.", in_flight
        )
        connections = len(self.server.connections) if self.server is not None else 0
        yield GaugeMetricFamily("shadowproxy_active_connections", "Open client HTTP connections.", connections)
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:
            tasks = 0
        yield GaugeMetricFamily("shadowproxy_asyncio_tasks", "Live asyncio tasks in the proxy's event loop.", tasks)
        yield from self._upstreams()

    def _counters(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "shadowproxy_messages",
            "Messages judged, by direction, method and verdict.",
            labels=["direction", "method", "verdict"],
        )
        for (direction, method, verdict), value in counters.message_counts().items():
            messages.add_metric([direction.value, method, verdict], value)
        yield messages
        decisions = CounterMetricFamily(
            "shadowproxy_interceptor_decisions",
            "Messages an interceptor stopped or answered, by interceptor and verdict.",
            labels=["interceptor", "verdict"],
        )
        for labels, value in counters.decision_counts().items():
            decisions.add_metric(list(labels), value)
        yield decisions
        failures = CounterMetricFamily(
            "shadowproxy_interceptor_failures",
            "Interceptors that raised (the message failed closed) and observers that raised (it went on).",
            labels=["interceptor"],
        )
        for name, value in list(self.proxy.chain.failures.by_name.items()):
            failures.add_metric([name], value)
        yield failures

    def _upstreams(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "shadowproxy_upstream_up",
            "1 when the last exchange or health check worked (or none failed yet) and its circuit is not open.",
            labels=["upstream"],
        )
        processes = GaugeMetricFamily(
            "shadowproxy_upstream_processes", "Running server processes of a stdio upstream.", labels=["upstream"]
        )
        restarts = CounterMetricFamily(
            "shadowproxy_upstream_restarts",
            "Shared or stateless stdio server processes started again (died, failed checks, or asked to).",
            labels=["upstream"],
        )
        crashes = CounterMetricFamily(
            "shadowproxy_upstream_crashes",
            "Stdio server processes that could not start or exited without being asked to.",
            labels=["upstream"],
        )
        circuit = GaugeMetricFamily(
            "shadowproxy_upstream_circuit_state",
            "A stdio upstream's circuit: 0 closed, 1 half-open, 2 open (new sessions refused).",
            labels=["upstream"],
        )
        failed_checks = CounterMetricFamily(
            "shadowproxy_upstream_health_check_failures",
            "Health checks that failed: no answer to ping in time, process gone, or unreachable.",
            labels=["upstream"],
        )
        seen: set[str] = set()
        for mount in self.proxy.mounts:
            upstream = mount.upstream
            if upstream.name in seen:
                continue
            seen.add(upstream.name)
            monitor = self.proxy.monitors.get(upstream.name)
            down = counters.upstream_healthy(upstream.name) is False or (monitor is not None and not monitor.ready)
            up.add_metric([upstream.name], 0 if down else 1)
            if monitor is not None:
                failed_checks.add_metric([upstream.name], monitor.failed_checks)
            if isinstance(upstream, StdioUpstream):
                processes.add_metric([upstream.name], len(upstream.children))
                restarts.add_metric([upstream.name], upstream.restarts)
                crashes.add_metric([upstream.name], upstream.crashes)
                circuit.add_metric([upstream.name], int(upstream.circuit.state))
        yield from (up, processes, restarts, crashes, circuit, failed_checks)


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


COLLECTOR_KEY = web.AppKey("shadowproxy.metrics", ProxyCollector)


def watch_server(app: web.Application, server: object) -> None:
    """The aiohttp server that holds the app's client connections (it has no public accessor from a request)."""
    app[COLLECTOR_KEY].server = server


def register(app: web.Application, proxy: Proxy, endpoints: Sequence[StreamableHttpEndpoint]) -> None:
    """Serve ``/metrics`` (on ``metrics_port`` when set) and read ``proxy`` at each scrape."""
    collector = ProxyCollector(proxy, endpoints)
    app[COLLECTOR_KEY] = collector
    port = proxy.config.metrics_port
    if port is None:
        app.router.add_get("/metrics", metrics_endpoint)
    else:
        app.cleanup_ctx.append(separate_port(proxy.config.host, port))

    async def registered(app: web.Application) -> AsyncIterator[None]:
        REGISTRY.register(collector)
        yield
        REGISTRY.unregister(collector)

    app.cleanup_ctx.append(registered)


def separate_port(host: str, port: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """``/metrics`` alone on its own port, outside the proxy's middlewares (client auth included)."""

    async def serving(app: web.Application) -> AsyncIterator[None]:
        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", metrics_endpoint)
        runner = web.AppRunner(metrics_app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as exc:
                raise ConfigError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}", key="metrics_port"
                ) from None
            log.info("metrics are served at http://%s:%s/metrics", host, port)
            yield
        finally:
            await runner.cleanup()

    return serving
