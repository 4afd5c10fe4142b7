"""scripts/conformance/compare.py: the verdict of the conformance run, on results laid out as the suite writes them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

COMPARE = Path(__file__).resolve().parents[2] / "scripts" / "conformance" / "compare.py"


@pytest.fixture(scope="module")
def compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_compare", COMPARE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def write_run(results: Path, pairing: str, scenario: str, checks: list[tuple[str, str, str]]) -> None:
    folder = results / pairing / "2025-11-25" / f"server-{scenario}-2026-11-23T17-56-06-953Z"
    folder.mkdir(parents=True)
    body = [{"id": check, "status": status, "errorMessage": message} for check, status, message in checks]
    (folder / "checks.json").write_text(json.dumps(body))


def run(compare: ModuleType, results: Path) -> int:
    return compare.main([str(results), "--requirements", "2025-11-25", "--pairings", "proxy-http"])  # type: ignore[no-any-return]


def test_equal_runs_pass(compare: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checks = [("tools-list", "SUCCESS", ""), ("known-gap", "FAILURE", "fails direct too")]
    write_run(tmp_path, "direct", "tools-list", checks)
    write_run(tmp_path, "proxy-http", "tools-list", checks)
    assert run(compare, tmp_path) == 0
    assert "1/2" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["regressions"] == [] and summary["table"]["2025-11-25"]["proxy-http"] == {"passed": 1, "checks": 2}


def test_a_check_lost_through_the_proxy_fails(
    compare: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(tmp_path, "direct", "ping", [("ping", "SUCCESS", ""), ("ping-id", "SUCCESS", "")])
    write_run(tmp_path, "proxy-http", "ping", [("ping", "FAILURE", "got HTTP 502"), ("ping", "SUCCESS", "")])
    assert run(compare, tmp_path) == 1
    out = capsys.readouterr().out
    assert "REGRESSION [2025-11-25 via proxy-http] ping :: ping: FAILURE" in out and "got HTTP 502" in out
    assert "ping :: ping-id: MISSING" in out


def test_a_missing_direct_run_is_an_error(compare: ModuleType, tmp_path: Path) -> None:
    write_run(tmp_path, "proxy-http", "ping", [("ping", "SUCCESS", "")])
    assert run(compare, tmp_path) == 2
    assert json.loads((tmp_path / "summary.json").read_text())["no_baseline"] == ["2025-11-25"]


def test_known_gaps_are_reported_and_cannot_go_stale(
    compare: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gaps = tmp_path / "gaps.json"
    gap = {"requirements": "2025-11-25", "pairing": "proxy-http", "scenario": "sse", "check": "resume"}
    gaps.write_text(json.dumps({"gaps": [{**gap, "issue": 6, "why": "needs the event log"}]}))
    results = tmp_path / "results"
    write_run(results, "direct", "sse", [("resume", "SUCCESS", "")])
    write_run(results, "proxy-http", "sse", [("resume", "FAILURE", "no resumption")])
    argv = [str(results), "--requirements", "2025-11-25", "--pairings", "proxy-http", "--known-gaps", str(gaps)]
    assert compare.main(argv) == 0
    assert "KNOWN GAP  [2025-11-25 via proxy-http] sse :: resume" in capsys.readouterr().out

    fixed = tmp_path / "fixed"
    write_run(fixed, "direct", "sse", [("resume", "SUCCESS", "")])
    write_run(fixed, "proxy-http", "sse", [("resume", "SUCCESS", "")])
    assert compare.main([str(fixed), *argv[1:]]) == 1
    assert "STALE GAP" in capsys.readouterr().out
