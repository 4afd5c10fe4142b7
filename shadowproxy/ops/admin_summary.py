"""``GET /_shadowproxy/summary``: the proxy's running totals in one small JSON document, for the console's header
charts and its upstreams view (the console turns two readings into rates and windowed percentiles).

It reads the same instruments as ``/metrics`` (:mod:`shadowproxy.core.counters`), through their public
``collect()``, so it costs nothing until it is asked and needs no scrape port or Prometheus text parser.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.registry import Collector

from shadowproxy.core import counters
from shadowproxy.core.chain import C2S

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy

QUANTILES = (0.5, 0.95, 0.99)

_number = {"type": "number"}
_buckets = {
    "type": "object",
    "required": ["bounds", "cumulative", "count"],
    "properties": {
        "bounds": {"type": "array", "items": _number, "description": "finite bucket upper bounds, in seconds"},
        "cumulative": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "description": "observations at or under each bound, then all of them (the +Inf bucket)",
        },
        "count": {"type": "integer", "minimum": 0},
    },
}
OPENAPI_PATHS = {
    "/summary": {
        "get": {
            "operationId": "getSummary",
            "summary": "Running totals: messages, requests, errors, proxy overhead and upstream latency",
            "security": [{"adminToken": []}],
            "responses": {
                "200": {
                    "description": "Totals since the proxy started",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["time", "messages", "requests", "blocked", "errors", "sessions"],
                                "properties": {
                                    "time": _number,
                                    "messages": {"type": "integer", "minimum": 0},
                                    "requests": {"type": "integer", "minimum": 0},
                                    "blocked": {"type": "integer", "minimum": 0},
                                    "errors": {"type": "integer", "minimum": 0},
                                    "sessions": {"type": "integer", "minimum": 0},
                                    "overhead": _buckets,
                                    "upstreams": {"type": "object", "additionalProperties": _buckets},
                                },
                            }
                        }
                    },
                },
                "401": {
                    "description": "No or wrong admin token",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        }
    }
}


def histogram(collector: Collector, label: str | None = None) -> dict[str, dict[str, Any]]:
    """A :class:`~shadowproxy.core.counters.LatencyHistogram`'s buckets, summed over every label but ``label``
    (keyed by its value; by ``""`` when ``label`` is ``None``), with p50/p95/p99 estimated from them."""
    merged: dict[str, dict[float, float]] = {}
    for family in collector.collect():
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            key = sample.labels.get(label, "") if label is not None else ""
            bound = float(sample.labels["le"])
            buckets = merged.setdefault(key, {})
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    shown: dict[str, dict[str, Any]] = {}
    for key, buckets in merged.items():
        bounds = sorted(buckets)
        cumulative = [int(buckets[bound]) for bound in bounds]
        entry: dict[str, Any] = {
            "bounds": bounds[:-1],
            "cumulative": cumulative,
            "count": cumulative[-1] if cumulative else 0,
        }
        for quantile in QUANTILES:
            entry[f"p{round(quantile * 100)}_ms"] = estimate(bounds, cumulative, quantile)
        shown[key] = entry
    return shown


def estimate(bounds: list[float], cumulative: list[int], quantile: float) -> float | None:
    """The ``quantile`` in milliseconds, interpolated in its bucket as Prometheus' ``histogram_quantile`` does;
    ``None`` with no observation. A value in the +Inf bucket is reported as the last finite bound."""
    total = cumulative[-1] if cumulative else 0
    if total == 0:
        return None
    rank = quantile * total
    below, lower = 0, 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return round(lower * 1000, 3)
            share = (rank - below) / (count - below) if count > below else 1.0
            return round((lower + (bound - lower) * share) * 1000, 3)
        below, lower = count, bound
    return round(lower * 1000, 3)


def failures() -> int:
    total = 0.0
    for family in counters.UPSTREAM_FAILURES.collect():
        total += sum(sample.value for sample in family.samples if sample.name.endswith("_total"))
    return int(total)


def summary(proxy: Proxy) -> dict[str, Any]:
    """The totals: ``requests`` are client→server messages other than notifications; ``errors`` are blocked
    messages and upstream failures."""
    messages = requests = blocked = 0
    for (direction, method, verdict), value in counters.message_counts().items():
        messages += value
        if verdict == "block":
            blocked += value
        if direction is C2S and not method.startswith("notifications/"):
            requests += value
    overhead = histogram(counters.OVERHEAD_SECONDS).get("")
    return {
        "time": time.time(),
        "messages": messages,
        "requests": requests,
        "blocked": blocked,
        "errors": blocked + failures(),
        "sessions": len(proxy.sessions.live),
        "overhead": overhead or {"bounds": [], "cumulative": [], "count": 0},
        "upstreams": histogram(counters.UPSTREAM_SECONDS, "upstream"),
    }


def handler(proxy: Proxy) -> web.Handler:
    async def get_summary(request: web.Request) -> web.Response:
        return web.json_response(summary(proxy))

    return get_summary
