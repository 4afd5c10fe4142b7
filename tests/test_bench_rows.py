"""The e2e harness's feature rows still configure the proxy, and its target, peer and feature checks judge rightly.

A feature row whose config the proxy refuses would show as "failed" in a long run; this finds it in a second.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from benchmarks import e2e, features, report, rows
from benchmarks.report import RowResult
from shadowproxy.cli.main import main as shadowproxy

FASTSERVER = Path(__file__).resolve().parents[1] / "benchmarks" / "fastserver.py"


@pytest.mark.parametrize("feature", features.FEATURES, ids=lambda feature: feature.key)
def test_feature_config_is_valid(feature: features.Feature, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if feature.needs and importlib.util.find_spec(feature.needs.split(".")[0]) is None:
        assert feature.missing() is not None  # the row says why instead of failing at start
        pytest.skip(f"{feature.needs} not installed")
    config = features.write_config(feature.key, tmp_path, "http://127.0.0.1:4318/v1/traces")
    code = shadowproxy(["config", "check", "--config", str(config), "--upstream", f"python {FASTSERVER} stdio"])
    out = capsys.readouterr()
    assert code == 0, out.err + out.out


def test_feature_names_say_whether_the_load_matches() -> None:
    rows = {feature.row for feature in features.FEATURES}
    assert len(rows) == len(features.FEATURES)
    assert all(row.endswith(("(matching)", "(not matching)")) for row in rows)


def row(
    name: str, baseline: str, rps: float, concurrency: int = 16, status: str = "ok", p50_ms: float = math.nan
) -> RowResult:
    return RowResult(name, baseline, concurrency, status=status, rps=rps, p50_ms=p50_ms)


def test_feature_checks_flag_a_not_matching_row_over_budget() -> None:
    plain = row(report.PROXY_HTTP_STDIO, report.DIRECT_HTTP, 1000.0)
    cheap = row(report.FEATURE_PREFIX + "pinning off (not matching)", report.PROXY_HTTP_STDIO, 980.0)
    dear = row(report.FEATURE_PREFIX + "approvals (not matching)", report.PROXY_HTTP_STDIO, 950.0)
    working = row(report.FEATURE_PREFIX + "audit (matching)", report.PROXY_HTTP_STDIO, 500.0)
    rows = [plain, cheap, dear, working]
    report.compare(rows)
    verdicts = {check.target.split(", ", 1)[1]: check.met for check in report.feature_checks(rows)}
    assert verdicts == {"pinning off (not matching) costs <= 3%": True, "approvals (not matching) costs <= 3%": False}


def test_peer_checks_want_15x_on_the_hard_rows_and_ahead_elsewhere() -> None:
    ours = row(report.PROXY_HTTP_STDIO, report.DIRECT_HTTP, 1500.0)
    ours_http = row(report.PROXY_HTTP_HTTP, report.DIRECT_HTTP, 1500.0)
    near = row("peer near 1.0 HTTP->stdio", report.PROXY_HTTP_STDIO, 101.0)
    far = row("peer far 1.0 HTTP->stdio", report.PROXY_HTTP_STDIO, 99.0)
    slow = row("peer slow 1.0 HTTP->HTTP", report.PROXY_HTTP_HTTP, 1400.0)
    broken = row("peer broken 1.0 HTTP->HTTP", report.PROXY_HTTP_HTTP, float("nan"), status="failed: it crashed")
    found = report.peer_checks([ours, ours_http, near, far, slow, broken], high=16)
    assert [check.met for check in found] == [False, True, True, None]
    assert found[3].measured == "failed: it crashed"


def test_only_installs_the_peers_whose_rows_it_selects() -> None:
    def picks(only: str) -> tuple[str, ...]:
        return rows.peers_needed(rows.PEER_NAMES, lambda name: e2e.selected(name, only))

    assert picks("shadowproxy") == ()
    assert picks("HTTP->HTTP") == ("fastmcp", "contextforge")
    assert picks("=peer supergateway 4.0.0 stdio->HTTP,direct") == ("supergateway",)


def test_the_checks_are_issue_27s_ratios_and_latencies() -> None:
    rows = [
        row(report.DIRECT_HTTP, report.DIRECT_HTTP, 1000.0),
        row(report.DIRECT_STDIO, report.DIRECT_STDIO, 1000.0),
        row(report.PROXY_HTTP_STDIO, report.DIRECT_HTTP, 790.0),
        row(report.PROXY_WS_STDIO, report.DIRECT_HTTP, 800.0),
        row(report.PROXY_HTTP_HTTP, report.DIRECT_HTTP, 650.0),
        row(report.PROXY_STDIO_STDIO, report.DIRECT_STDIO, 700.0),
    ]
    rows += [
        row(report.DIRECT_HTTP, report.DIRECT_HTTP, 100.0, concurrency=1, p50_ms=0.1),
        row(report.PROXY_HTTP_STDIO, report.DIRECT_HTTP, 80.0, concurrency=1, p50_ms=0.399),
        row(report.PROXY_HTTP_HTTP, report.DIRECT_HTTP, 60.0, concurrency=1, p50_ms=0.401),
    ]
    report.compare(rows)
    verdicts = {check.target: (check.measured, check.met) for check in report.checks(rows, high=16)}
    assert verdicts == {
        "HTTP->HTTP >= 65% of direct HTTP (aiohttp) req/s at 16 client(s)": ("65%", True),
        "HTTP->stdio >= 80% of direct HTTP (aiohttp) req/s at 16 client(s)": ("79%", False),
        "WebSocket->stdio >= 80% of direct HTTP (aiohttp) req/s at 16 client(s)": ("80%", True),
        "stdio->stdio >= 70% of direct stdio req/s at 16 client(s)": ("70%", True),
        "stdio->stdio >= 70% of direct stdio req/s at 1 client(s)": ("not measured", None),
        "HTTP->stdio p50 added latency < 0.3 ms at 1 client": ("+0.299 ms", True),
        "HTTP->HTTP p50 added latency < 0.3 ms at 1 client": ("+0.301 ms", False),
        "stdio->stdio >= 10,000 req/s (16 in flight)": ("700 req/s", False),
    }


def test_the_req_s_floor_needs_no_direct_row() -> None:
    rows = [row(report.PROXY_STDIO_STDIO, report.DIRECT_STDIO, 12_000.0)]
    report.compare(rows)
    verdicts = {check.target: check.met for check in report.checks(rows, high=16)}
    assert verdicts["stdio->stdio >= 10,000 req/s (16 in flight)"] is True
    assert verdicts["stdio->stdio >= 70% of direct stdio req/s at 16 client(s)"] is None
