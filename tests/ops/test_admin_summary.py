"""The summary's percentile estimate, checked against known histograms (the endpoint itself: tests/console/)."""

from __future__ import annotations

import math

from shadowproxy.core.counters import LatencyHistogram
from shadowproxy.ops.admin_summary import estimate, histogram

BOUNDS = [0.001, 0.01, 0.1, math.inf]


def test_no_observation_has_no_percentile() -> None:
    assert estimate(BOUNDS, [0, 0, 0, 0], 0.5) is None


def test_interpolated_inside_the_bucket() -> None:
    # 10 under 1 ms, 10 more under 10 ms: the median is the top of the first bucket, p75 halfway into the second.
    assert estimate(BOUNDS, [10, 20, 20, 20], 0.5) == 1.0
    assert estimate(BOUNDS, [10, 20, 20, 20], 0.75) == 5.5


def test_the_inf_bucket_reports_the_last_finite_bound() -> None:
    assert estimate(BOUNDS, [0, 0, 0, 5], 0.99) == 100.0


def test_histogram_sums_labels_but_the_one_kept() -> None:
    latency = LatencyHistogram("test_console_seconds", "test", ("upstream", "method"), (0.001, 0.01))
    for seconds in (0.0005, 0.0005, 0.005):
        latency.labels("a", "tools/call").observe(seconds)
    latency.labels("a", "ping").observe(0.0005)
    latency.labels("b", "ping").observe(0.5)
    shown = histogram(latency, "upstream")
    assert shown["a"]["bounds"] == [0.001, 0.01] and shown["a"]["cumulative"] == [3, 4, 4]
    assert shown["a"]["count"] == 4 and shown["a"]["p50_ms"] is not None and shown["a"]["p50_ms"] <= 1.0
    assert shown["b"]["cumulative"] == [0, 0, 1] and shown["b"]["p99_ms"] == 10.0
    assert histogram(latency)[""]["count"] == 5
