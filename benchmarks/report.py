"""The harness's output: one table, the issue's targets checked against it, and the same as JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

DIRECT_HTTP = "direct HTTP (aiohttp)"
DIRECT_STDIO = "direct stdio"
PROXY_HTTP_STDIO = "shadowproxy HTTP->stdio"
PROXY_STDIO_STDIO = "shadowproxy stdio->stdio"
PROXY_HTTP_HTTP = "shadowproxy HTTP->HTTP"
PROXY_STDIO_HTTP = "shadowproxy stdio->HTTP"
PROXY_WS_STDIO = "shadowproxy WebSocket->stdio"
PEER_PREFIX = "peer "
"""A peer's row is named ``peer <name> <version> <path>`` and compared with the ShadowProxy row of that path."""
FEATURE_PREFIX = PROXY_HTTP_STDIO + ", "
"""A feature's row is named ``shadowproxy HTTP->stdio, <feature> (matching|not matching)``."""
PEER_FACTOR = 15.0
"""The issue's target: ShadowProxy at least this many times each peer's req/s on HTTP->stdio and stdio->HTTP, at
high concurrency (and ahead of every peer on every row)."""
FEATURE_BUDGET = 0.03
"""The most a configured-but-not-matching feature may cost (fraction of the plain proxy's req/s)."""


@dataclass
class RowResult:
    """One row of the table: a target at one concurrency, or why it has no figures."""

    name: str
    baseline: str
    concurrency: int
    status: str = "ok"
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    rps: float = math.nan
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    cpu_s_per_1k: float = math.nan
    peak_rss_mib: float = math.nan
    client_cpu_pct: float = math.nan
    ratio: float = math.nan
    added_p50_ms: float = math.nan
    first_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            key: (None if isinstance(value, float) and math.isnan(value) else value)
            for key, value in asdict(self).items()
        }


@dataclass(frozen=True)
class Check:
    """One of the issue's targets and whether the measured figures meet it."""

    target: str
    measured: str
    met: bool | None


def compare(rows: list[RowResult]) -> None:
    """Fill each row's ratio and added p50 against its baseline row at the same concurrency."""
    by_key = {(row.name, row.concurrency): row for row in rows if row.status == "ok"}
    for row in rows:
        base = by_key.get((row.baseline, row.concurrency))
        if row.status != "ok" or base is None or not base.rps:
            continue
        row.ratio = row.rps / base.rps
        row.added_p50_ms = row.p50_ms - base.p50_ms


def _find(rows: list[RowResult], name: str, concurrency: int) -> RowResult | None:
    return next(
        (row for row in rows if row.name == name and row.concurrency == concurrency and row.status == "ok"), None
    )


HIGH = 0
"""Stands for the run's highest client count in :data:`RATIO_TARGETS` and :data:`LATENCY_TARGETS`."""
RATIO_TARGETS = (
    (PROXY_HTTP_HTTP, HIGH, 0.65),  # issue 27, item 1
    (PROXY_HTTP_STDIO, HIGH, 0.80),  # item 2
    (PROXY_WS_STDIO, HIGH, 0.80),  # item 2: WebSocket->stdio at the HTTP->stdio figure
    (PROXY_STDIO_STDIO, HIGH, 0.70),  # item 3, against a direct row that has headroom
    (PROXY_STDIO_STDIO, 1, 0.70),
)
"""A row's least req/s against its baseline row (direct HTTP or direct stdio): row, clients, ratio."""
LATENCY_TARGETS = ((PROXY_HTTP_STDIO, 1, 0.3), (PROXY_HTTP_HTTP, 1, 0.3))
"""A row's most added p50 in ms against its baseline row, at one client (items 1 and the first round)."""


def checks(rows: list[RowResult], high: int) -> list[Check]:
    """The issue's targets, at ``high`` concurrent clients and at one."""
    found: list[Check] = []

    def add(target: str, row: RowResult | None, measure: Any, *, against_baseline: bool = True) -> None:
        if row is None or (against_baseline and math.isnan(row.ratio)):
            found.append(Check(target, "not measured", None))
        else:
            found.append(Check(target, *measure(row)))

    for name, clients, least in RATIO_TARGETS:
        clients = clients or high
        add(
            f"{name.removeprefix('shadowproxy ')} >= {least:.0%} of {_baseline(rows, name)} req/s at {clients}"
            f" client(s)",
            _find(rows, name, clients),
            lambda row, least=least: (f"{row.ratio:.0%}", row.ratio >= least),
        )
    for name, clients, most in LATENCY_TARGETS:
        add(
            f"{name.removeprefix('shadowproxy ')} p50 added latency < {most} ms at {clients} client",
            _find(rows, name, clients),
            lambda row, most=most: (f"{row.added_p50_ms:+.3f} ms", row.added_p50_ms < most),
        )
    add(
        f"stdio->stdio >= 10,000 req/s ({high} in flight)",
        _find(rows, PROXY_STDIO_STDIO, high),
        lambda row: (f"{row.rps:,.0f} req/s", row.rps >= 10_000),
        against_baseline=False,
    )
    found += peer_checks(rows, high) + feature_checks(rows)
    return found


def _baseline(rows: list[RowResult], name: str) -> str:
    return next((row.baseline for row in rows if row.name == name), "its direct row")


def peer_checks(rows: list[RowResult], high: int) -> list[Check]:
    """ShadowProxy ahead of every peer on every row, and 15x each HTTP->stdio peer at ``high`` clients."""
    found: list[Check] = []
    for row in rows:
        if not row.name.startswith(PEER_PREFIX):
            continue
        ours = _find(rows, row.baseline, row.concurrency)
        if row.status != "ok" or ours is None:
            found.append(
                Check(
                    f"{row.name}, {row.concurrency} clients: ShadowProxy ahead",
                    "not measured" if row.status == "ok" else row.status,
                    None,
                )
            )
            continue
        times = ours.rps / row.rps if row.rps else math.inf
        hard = row.baseline in (PROXY_HTTP_STDIO, PROXY_STDIO_HTTP) and row.concurrency == high
        factor = PEER_FACTOR if hard else 1.0
        goal = f">= {factor:.0f}x" if factor > 1 else "ahead of"
        found.append(
            Check(
                f"{row.baseline} {goal} {row.name}, {row.concurrency} clients",
                f"{times:.1f}x ({_cpu(row, ours)})",
                times >= factor and times > 1,
            )
        )
    return found


def feature_checks(rows: list[RowResult]) -> list[Check]:
    """Every feature configured but not matching within :data:`FEATURE_BUDGET` of the plain proxy's req/s."""
    found: list[Check] = []
    for row in rows:
        if not (row.name.startswith(FEATURE_PREFIX) and row.name.endswith("(not matching)")):
            continue
        if row.status != "ok" or math.isnan(row.ratio):
            found.append(Check(f"{row.name} costs <= {FEATURE_BUDGET:.0%}", row.status, None))
            continue
        base = _find(rows, row.baseline, row.concurrency)
        cpu = f" ({_cpu(row, base)})" if base is not None else ""
        found.append(
            Check(
                f"{row.name} costs <= {FEATURE_BUDGET:.0%}",
                f"{1 - row.ratio:+.1%} of req/s{cpu}",
                row.ratio >= 1 - FEATURE_BUDGET,
            )
        )
    return found


def _cpu(row: RowResult, base: RowResult) -> str:
    """CPU per request of ``row`` against ``base``: steadier than req/s on a machine shared with other work."""
    if math.isnan(row.cpu_s_per_1k) or math.isnan(base.cpu_s_per_1k) or not base.cpu_s_per_1k:
        return "CPU/req n/a"
    return f"CPU/req {row.cpu_s_per_1k / base.cpu_s_per_1k:.2f}x"


def _cell(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def table(rows: list[RowResult]) -> str:
    """The results as a fixed-width text table; a row without figures shows why."""
    header = (
        "row",
        "c",
        "req/s",
        "ratio",
        "p50 ms",
        "+p50 ms",
        "p90 ms",
        "p99 ms",
        "CPU s/1k",
        "RSS MiB",
        "client CPU",
        "err",
    )
    full = [header]
    for row in rows:
        if row.status == "ok":
            full.append(
                (
                    row.name,
                    str(row.concurrency),
                    _cell(row.rps, ",.0f"),
                    _cell(row.ratio, ".2f"),
                    _cell(row.p50_ms, ".3f"),
                    _cell(row.added_p50_ms, "+.3f"),
                    _cell(row.p90_ms, ".3f"),
                    _cell(row.p99_ms, ".3f"),
                    _cell(row.cpu_s_per_1k, ".3f"),
                    _cell(row.peak_rss_mib, ".1f"),
                    _cell(row.client_cpu_pct, ".0f") + "%",
                    str(row.errors),
                )
            )
    widths = [max(len(line[i]) for line in full) for i in range(len(header))]
    widths[0] = max(widths[0], *(len(row.name) for row in rows)) if rows else widths[0]

    def render(line: tuple[str, ...]) -> str:
        return "  ".join(
            [line[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True))]
        )

    out = [render(header)]
    ok_lines = iter(full[1:])
    for row in rows:
        if row.status == "ok":
            out.append(render(next(ok_lines)))
        else:
            out.append(f"{row.name.ljust(widths[0])}  {str(row.concurrency).rjust(widths[1])}  {row.status}")
    return "\n".join(out)


def check_lines(found: list[Check]) -> str:
    marks = {True: "MET ", False: "MISS", None: "n/a "}
    return "\n".join(f"[{marks[check.met]}] {check.target}: {check.measured}" for check in found)
