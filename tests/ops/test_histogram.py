"""The hot path's latency histograms: Prometheus buckets (``le`` is inclusive and cumulative), count and sum."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from shadowproxy.core.counters import LatencyHistogram


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_observations_land_in_cumulative_inclusive_buckets() -> None:
    registry = CollectorRegistry()
    histogram = LatencyHistogram("t_seconds", "Test.", ("upstream",), (0.001, 0.01, 0.1))
    registry.register(histogram)
    series = histogram.labels("a")
    for seconds in (0.0005, 0.001, 0.005, 0.5):
        series.observe(seconds)
    histogram.labels("b").observe(0.05)

    got = samples(registry)
    a = {"upstream": "a"}
    assert got[("t_seconds_bucket", frozenset({**a, "le": "0.001"}.items()))] == 2  # 0.001 itself counts as <= 0.001
    assert got[("t_seconds_bucket", frozenset({**a, "le": "0.01"}.items()))] == 3
    assert got[("t_seconds_bucket", frozenset({**a, "le": "0.1"}.items()))] == 3
    assert got[("t_seconds_bucket", frozenset({**a, "le": "+Inf"}.items()))] == 4
    assert got[("t_seconds_count", frozenset(a.items()))] == 4
    assert abs(got[("t_seconds_sum", frozenset(a.items()))] - 0.5065) < 1e-9
    assert got[("t_seconds_count", frozenset({"upstream": "b"}.items()))] == 1
    assert histogram.labels("a") is series


def test_the_exposition_is_a_prometheus_histogram() -> None:
    registry = CollectorRegistry()
    histogram = LatencyHistogram("u_seconds", "Test.", ("transport",), (0.5,))
    registry.register(histogram)
    histogram.labels("http").observe(0.25)
    text = generate_latest(registry).decode()
    assert "# TYPE u_seconds histogram" in text
    assert 'u_seconds_bucket{le="0.5",transport="http"} 1.0' in text
