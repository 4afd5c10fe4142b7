"""The shipped packs, each run against its own cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy.rules.cases import load_cases, run_case
from shadowproxy.rules.ruleset import load
from shadowproxy.rules.source import PACKS_DIR

PACKS = sorted(path.stem for path in PACKS_DIR.glob("*.yaml"))


def test_the_required_packs_ship() -> None:
    assert {"read-only", "no-secrets", "pii", "allowlist-example"} <= set(PACKS)


@pytest.mark.parametrize("pack", PACKS)
def test_pack_passes_its_cases(pack: str) -> None:
    rules = load([f"builtin:{pack}"])
    cases = load_cases(PACKS_DIR / "cases" / pack)
    assert len(cases) >= 3
    failures = {case.name: result.failures for case in cases if not (result := run_case(rules, case)).passed}
    assert failures == {}


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    rules = load(["builtin:read-only"])
    (tmp_path / "c.yaml").write_text(
        "cases:\n  - name: wrong\n"
        "    message: {jsonrpc: '2.0', id: 1, method: tools/call, params: {name: write_file}}\n"
        "    expect: {verdict: forward}\n"
    )
    (case,) = load_cases(tmp_path)
    result = run_case(rules, case)
    assert result.failures == [
        "expected verdict forward, got block "
        "(blocked by the read-only policy: the tool's name says it writes, deletes or executes)"
    ]
