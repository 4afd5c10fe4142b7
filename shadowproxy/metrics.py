"""Prometheus metrics of the proxy core, and the ``/metrics`` endpoint.

The hot path pays for one dict increment per message (:func:`judged`) and one
histogram observation per request (:func:`answered`); everything that is state
rather than an event (sessions, streams, connections, tasks, upstream children,
health) is read by a collector only when Prometheus scrapes. Labels stay
bounded: a method outside :data:`KNOWN_METHODS` is ``other``, upstream and
interceptor names come from config, and no session id is ever a label.

The persistence worker and the rules engine own their instruments (same
registry, same ``shadowproxy_`` prefix); this module serves them all. So does
:mod:`shadowproxy.limits` (``shadowproxy_limit_hits_total{limit}``), since the
codec and the stdio children count hits and cannot import this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shadowproxy.chain import C2S, S2C, Direction, MessageContext, Verdict
from shadowproxy.errors import ConfigError
from shadowproxy.histogram import LatencyHistogram, Series
from shadowproxy.jsonrpc import Message
from shadowproxy.upstreams.stdio import StdioUpstream

if TYPE_CHECKING:
    from shadowproxy.app import Proxy

log = logging.getLogger(__name__)

KNOWN_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "sampling/createMessage",
        "elicitation/create",
        "roots/list",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
        "server/discover",
        "subscriptions/listen",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/message",
        "notifications/roots/list_changed",
        "notifications/tools/list_changed",
        "notifications/resources/list_changed",
        "notifications/resources/updated",
        "notifications/prompts/list_changed",
        "notifications/elicitation/complete",
        "notifications/tasks/status",
    }
)
"""Methods that get their own label value; any other method (or none) is counted as ``other``."""

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
UPSTREAM_SECONDS_KEY = "shadowproxy.upstream_seconds"
"""Where :func:`answered` leaves the upstream time on the aiohttp request, for :func:`overhead`."""

UPSTREAM_SECONDS = LatencyHistogram(
    "shadowproxy_upstream_request_seconds",
    "Time from sending a request upstream until its reply arrived.",
    ("upstream", "method"),
    LATENCY_BUCKETS,
)
OVERHEAD_SECONDS = LatencyHistogram(
    "shadowproxy_proxy_overhead_seconds",
    "Time the proxy added to one HTTP request: its whole handling minus the upstream time.",
    ("transport",),
    LATENCY_BUCKETS,
)
REGISTRY.register(UPSTREAM_SECONDS)
REGISTRY.register(OVERHEAD_SECONDS)
_http_overhead = OVERHEAD_SECONDS.labels("http")
UPSTREAM_STARTS = Counter(
    "shadowproxy_upstream_starts", "Upstream server processes started for a session.", ["upstream"]
)
UPSTREAM_FAILURES = Counter(
    "shadowproxy_upstream_failures",
    "Upstream failures: could not start, unreachable, died, or timed out.",
    ["upstream"],
)
ADMIN_RELOADS = Counter(
    "shadowproxy_reloads", "Reloads asked for through the admin API, by outcome.", ["interceptor", "outcome"]
)
EVENT_LOG_APPENDS = Counter(
    "shadowproxy_event_log_appends", "SSE events the proxy logged for resumption, by outcome.", ["outcome"]
)
EVENT_LOG_OK = EVENT_LOG_APPENDS.labels("ok")
EVENT_LOG_FAILED = EVENT_LOG_APPENDS.labels("failed")
STREAM_DETACHES = Counter(
    "shadowproxy_stream_detaches",
    "POST streams closed before their answer (client gone, or polling), the rest kept in the event log.",
    ["reason"],
)

# Keys are (client to server?, method, action, modified?): enum members hash through a Python-level
# __hash__, so the hot path keys on plain bools and strings and the collector names them.
_messages: dict[tuple[bool, str, str, bool], int] = {}
# Messages forwarded unjudged, by method, one dict per direction: the commonest count costs no tuple.
_passed_c2s: dict[str, int] = {}
_passed_s2c: dict[str, int] = {}
_upstream_histograms: dict[tuple[str, str], Series] = {}
_decisions: dict[tuple[str, str], int] = {}
_health: dict[str, bool] = {}


def verdict_label(action: str, modified: bool) -> str:
    """forward, modified, block or respond, from an :class:`Action` value."""
    if action == "forward":
        return "modified" if modified else "forward"
    return action


def passed(direction: Direction, message: Message, request: Message | None) -> None:
    """A message forwarded unjudged (the chain is empty, or declines it)."""
    method = message.data.get("method") or (request.data.get("method") if request is not None else None)
    counts = _passed_c2s if direction is C2S else _passed_s2c
    key = method if method in KNOWN_METHODS else "other"
    counts[key] = counts.get(key, 0) + 1


def judged(ctx: MessageContext, verdict: Verdict) -> None:
    """The chain's final verdict on one message: count it."""
    method = ctx.method
    action = verdict.action._value_
    key = (ctx.direction is C2S, method if method in KNOWN_METHODS else "other", action, verdict.message is not None)
    _messages[key] = _messages.get(key, 0) + 1
    if verdict.by is not None:
        decision = (verdict.by, verdict_label(action, verdict.message is not None))
        _decisions[decision] = _decisions.get(decision, 0) + 1


def clock() -> float:
    """A reading to give :func:`answered` later."""
    return time.perf_counter()


def answered(request: MutableMapping[str, Any] | None, upstream: str, method: str | None, sent: float) -> None:
    """The upstream replied to a request sent at ``sent`` (a :func:`clock` reading)."""
    seconds = time.perf_counter() - sent
    labels = (upstream, method if method in KNOWN_METHODS else "other")
    histogram = _upstream_histograms.get(labels)
    if histogram is None:
        histogram = _upstream_histograms[labels] = UPSTREAM_SECONDS.labels(*labels)
    histogram.observe(seconds)
    _health[upstream] = True
    if request is not None:
        request[UPSTREAM_SECONDS_KEY] = request.get(UPSTREAM_SECONDS_KEY, 0.0) + seconds


def upstream_started(upstream: object) -> None:
    """A session opened its channel: for a stdio server that is not shared, a new process."""
    if isinstance(upstream, StdioUpstream) and not upstream.config.share:
        UPSTREAM_STARTS.labels(upstream.name).inc()


def event_logged() -> None:
    EVENT_LOG_OK.inc()


def event_log_failed() -> None:
    EVENT_LOG_FAILED.inc()


def stream_detached(reason: str) -> None:
    STREAM_DETACHES.labels(reason).inc()


def upstream_failed(name: str) -> None:
    """Starting, reaching or hearing from the upstream failed; it counts as down until an exchange works."""
    UPSTREAM_FAILURES.labels(name).inc()
    _health[name] = False


def upstream_checked(name: str, ok: bool) -> None:
    """A health check's outcome: like an exchange, it says whether the upstream works now (no failure counted)."""
    _health[name] = ok


def upstream_healthy(name: str) -> bool | None:
    """Whether the last exchange with ``name`` worked; ``None`` before any."""
    return _health.get(name)


class ProxyCollector(Collector):
    """Reads the running proxy's state at scrape time."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
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
        in_flight = sum(endpoint.in_flight for endpoint in proxy.endpoints)
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
        totals = dict(_messages)
        for c2s, passed in ((True, _passed_c2s), (False, _passed_s2c)):
            for method, value in list(passed.items()):
                key = (c2s, method, "forward", False)
                totals[key] = totals.get(key, 0) + value
        for (c2s, method, action, modified), value in totals.items():
            direction = C2S if c2s else S2C
            messages.add_metric([direction.value, method, verdict_label(action, modified)], value)
        yield messages
        decisions = CounterMetricFamily(
            "shadowproxy_interceptor_decisions",
            "Messages an interceptor stopped or answered, by interceptor and verdict.",
            labels=["interceptor", "verdict"],
        )
        for labels, value in list(_decisions.items()):
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
            down = _health.get(upstream.name) is False or (monitor is not None and not monitor.ready)
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


def overhead(request: MutableMapping[str, Any], began: float) -> None:
    """An MCP POST handled since ``began`` (a :func:`clock` reading): what the upstream did not spend is ours."""
    spent = time.perf_counter() - began - request.get(UPSTREAM_SECONDS_KEY, 0.0)
    _http_overhead.observe(spent if spent > 0.0 else 0.0)


def watch_server(app: web.Application, server: object) -> None:
    """The aiohttp server that holds the app's client connections (it has no public accessor from a request)."""
    app[COLLECTOR_KEY].server = server


def register(app: web.Application, proxy: Proxy) -> None:
    """Serve ``/metrics`` (on ``metrics_port`` when set) and read ``proxy`` at each scrape."""
    collector = ProxyCollector(proxy)
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
