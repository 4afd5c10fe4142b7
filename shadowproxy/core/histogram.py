"""Latency histograms for the hot path, read by Prometheus at scrape time.

``prometheus_client.Histogram.observe`` takes a lock per bucket and checks its
state on every call; the proxy observes one or two latencies per request, all
on the event loop's thread, so it keeps plain lists of counts here and turns
them into the same ``_bucket`` / ``_count`` / ``_sum`` samples when scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


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
