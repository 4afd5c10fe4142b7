"""The instruments the hot path feeds: message, decision and latency counts, kept as plain numbers and read by
the collector (:mod:`shadowproxy.ops.metrics`) only when Prometheus scrapes.

The hot path pays for one dict increment per message (:func:`judged`) and one histogram observation per request
(:func:`answered`). Labels stay bounded: a method outside :data:`KNOWN_METHODS` is ``other``, upstream and
interceptor names come from config, and no session id is ever a label.

Latencies are :class:`LatencyHistogram` rather than ``prometheus_client.Histogram``, whose ``observe`` takes a
lock per bucket and checks its state on every call: the proxy observes one or two latencies per request, all on
the event loop's thread, so it keeps plain lists of counts and turns them into the same ``_bucket`` / ``_count``
/ ``_sum`` samples when scraped.

The persistence worker and the rules engine own their instruments (same registry, same ``shadowproxy_`` prefix),
and so does :mod:`shadowproxy.core.limit_hits` (``shadowproxy_limit_hits_total{limit}``).
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from shadowproxy.core.chain import C2S, S2C, Direction, MessageContext, Verdict
from shadowproxy.core.jsonrpc import Message

if TYPE_CHECKING:
    pass

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


class Series:
    """One label set's counts: ``counts[i]`` observations in bucket ``i`` (not cumulative), the last one +Inf."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le is "less than or equal").
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


class LatencyHistogram(Collector):
    """A histogram family with labels; register it once with a registry."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.bounds = tuple(sorted(buckets))
        self._les = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]
        self._series: dict[tuple[str, ...], Series] = {}

    def labels(self, *values: str) -> Series:
        """The series for ``values``, made on first use; callers keep it to skip this lookup."""
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = Series(self.bounds)
        return series

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labelnames))
        for values, series in list(self._series.items()):
            cumulative, buckets = 0, []
            for le, count in zip(self._les, series.counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(list(values), buckets, series.total)
        yield family


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
    "Time the proxy added to one HTTP request: its whole handling minus the upstream time and the time it was held"
    " for a decision (an approval, a breakpoint).",
    ("transport",),
    LATENCY_BUCKETS,
)
REGISTRY.register(UPSTREAM_SECONDS)
REGISTRY.register(OVERHEAD_SECONDS)
_http_overhead = OVERHEAD_SECONDS.labels("http")
_held: ContextVar[float] = ContextVar("shadowproxy_held_seconds", default=0.0)
"""Seconds the request of this task spent held (:func:`held_since`), taken off its overhead: a context variable,
as the mount that parks it does not see the HTTP request."""
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


def held_since(began: float) -> None:
    """A message was held for a decision since ``began`` (a :func:`clock` reading): a person's time, not ours."""
    _held.set(_held.get() + time.perf_counter() - began)


def overhead(request: MutableMapping[str, Any], began: float) -> None:
    """An MCP POST handled since ``began`` (a :func:`clock` reading): what the upstream did not spend, and no one
    spent deciding, is ours."""
    spent = time.perf_counter() - began - request.get(UPSTREAM_SECONDS_KEY, 0.0)
    held = _held.get()
    if held:
        spent -= held
        _held.set(0.0)
    _http_overhead.observe(spent if spent > 0.0 else 0.0)


def message_counts() -> dict[tuple[Direction, str, str], int]:
    """Messages judged and passed, by (direction, method, verdict label): what the collector reports."""
    totals: dict[tuple[Direction, str, str], int] = {}
    for (c2s, method, action, modified), value in list(_messages.items()):
        key = (C2S if c2s else S2C, method, verdict_label(action, modified))
        totals[key] = totals.get(key, 0) + value
    for direction, passed in ((C2S, _passed_c2s), (S2C, _passed_s2c)):
        for method, value in list(passed.items()):
            key = (direction, method, "forward")
            totals[key] = totals.get(key, 0) + value
    return totals


def decision_counts() -> dict[tuple[str, str], int]:
    """Messages an interceptor stopped or answered, by (interceptor, verdict label)."""
    return dict(_decisions)
