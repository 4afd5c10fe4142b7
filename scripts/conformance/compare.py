"""Compare conformance-suite results per check: direct against each proxy pairing.

Layout read (written by scripts/conformance.sh, one `conformance server -o` folder per run):

    RESULTS/<pairing>/<requirements>/server-<scenario>-<timestamp>/checks.json

`direct` is the baseline. A check that passes direct and does not pass through a pairing (failed,
warned, skipped, or missing because the run never happened) is a regression: it is printed with what
the suite said about it, written to RESULTS/summary.json, and makes the exit status 1. A baseline
with no passing check at all (the direct run could not run) exits 2. ``known-gaps.json`` beside this
file lists regressions already tracked by an open issue: they are printed as KNOWN GAP and do not fail
the run, but a listed gap that no longer occurs does, so the list cannot go stale; one marked
``"timing": true`` (it fails only where the machine is too slow for the suite's waits, which its reason says) may
pass without failing the run.

    python scripts/conformance/compare.py conformance-results --requirements 2025-11-25 2026-07-28 \
        --pairings proxy-stdio proxy-http
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

BASELINE = "direct"
PASS = "SUCCESS"
# When one check id repeats within a scenario, the most severe occurrence is its verdict (as the suite does).
SEVERITY = {"FAILURE": 4, "WARNING": 3, "SKIPPED": 2, "INFO": 1, "SUCCESS": 0}
_RUN_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")

CheckKey = tuple[str, str]


@dataclass(frozen=True)
class Verdict:
    """One check's collapsed outcome in one run."""

    status: str
    message: str


@dataclass(frozen=True)
class Regression:
    """A check that passes direct but not through `pairing`."""

    requirements: str
    pairing: str
    scenario: str
    check: str
    status: str
    message: str


def load_run(folder: Path) -> dict[CheckKey, Verdict]:
    """Every (scenario, check id) of one `conformance server -o folder` run; empty if the run is absent."""
    verdicts: dict[CheckKey, Verdict] = {}
    if not folder.is_dir():
        return verdicts
    for checks_file in sorted(folder.glob("*/checks.json")):
        match = _RUN_DIR.match(checks_file.parent.name)
        scenario = match["scenario"] if match else checks_file.parent.name
        for check in json.loads(checks_file.read_text()):
            key = (scenario, str(check.get("id")))
            status = str(check.get("status", "FAILURE"))
            verdict = Verdict(status, str(check.get("errorMessage") or ""))
            previous = verdicts.get(key)
            if previous is None or SEVERITY.get(status, 4) > SEVERITY.get(previous.status, 4):
                verdicts[key] = verdict
    return verdicts


def passed(run: dict[CheckKey, Verdict]) -> int:
    """How many checks of a run passed."""
    return sum(1 for verdict in run.values() if verdict.status == PASS)


def regressions(requirements: str, pairing: str, direct: dict[CheckKey, Verdict], other: dict[CheckKey, Verdict]):
    """The checks that pass in `direct` and not in `other`, in a stable order."""
    for key in sorted(direct):
        if direct[key].status != PASS:
            continue
        seen = other.get(key, Verdict("MISSING", "the check did not run through this pairing"))
        if seen.status != PASS:
            yield Regression(requirements, pairing, key[0], key[1], seen.status, seen.message)


def main(argv: list[str] | None = None) -> int:
    """Print the table, write summary.json, return the exit status (0 ok, 1 regression, 2 no baseline)."""
    parser = argparse.ArgumentParser(description="Compare conformance results: direct vs. through the proxy.")
    parser.add_argument("results", type=Path)
    parser.add_argument("--requirements", nargs="+", required=True)
    parser.add_argument("--pairings", nargs="*", default=[])
    parser.add_argument("--known-gaps", type=Path, default=Path(__file__).with_name("known-gaps.json"))
    args = parser.parse_args(argv)
    known = load_known_gaps(args.known_gaps)

    columns = [BASELINE, *args.pairings]
    header = f"{'requirements':<14}" + "".join(f"{name:>16}" for name in columns)
    print(header)
    print("-" * len(header))
    found: list[Regression] = []
    table: dict[str, dict[str, dict[str, int]]] = {}
    no_baseline: list[str] = []
    for requirements in args.requirements:
        direct = load_run(args.results / BASELINE / requirements)
        if passed(direct) == 0:
            no_baseline.append(requirements)
        row = table.setdefault(requirements, {})
        cells = []
        for name in columns:
            run = direct if name == BASELINE else load_run(args.results / name / requirements)
            row[name] = {"passed": passed(run), "checks": len(run)}
            cells.append(f"{passed(run)}/{len(run)}")
            if name != BASELINE:
                found.extend(regressions(requirements, name, direct, run))
        print(f"{requirements:<14}" + "".join(f"{cell:>16}" for cell in cells))
    print("(checks passed / checks reported; every check passing direct must pass through each pairing)")

    tracked = [item for item in found if gap_key(item) in known]
    found = [item for item in found if gap_key(item) not in known]
    compared = {(requirements, pairing) for requirements in args.requirements for pairing in args.pairings}
    passing = set(known) - {gap_key(item) for item in tracked}
    # A gap that depends on the machine's speed (``"timing": true``, with the reason) may pass on a fast one.
    stale = sorted(key for key in passing if key[:2] in compared and not known[key].get("timing"))
    for item in tracked:
        issue = known[gap_key(item)]
        print(f"KNOWN GAP  [{item.requirements} via {item.pairing}] {item.scenario} :: {item.check}: {item.status}")
        print(f"    tracked by issue {issue['issue']}: {issue['why']}")
    for item in found:
        print(f"REGRESSION [{item.requirements} via {item.pairing}] {item.scenario} :: {item.check}: {item.status}")
        if item.message:
            print(f"    {item.message}")
    for key in stale:
        print(f"STALE GAP  {' :: '.join(key)} now passes: remove it from {args.known_gaps.name}")
    for requirements in no_baseline:
        print(f"ERROR: the direct run for {requirements} has no passing check (did it run at all?)", file=sys.stderr)

    summary = {
        "table": table,
        "regressions": [asdict(item) for item in found],
        "known_gaps": [asdict(item) for item in tracked],
        "stale_gaps": [list(key) for key in stale],
        "no_baseline": no_baseline,
    }
    (args.results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if no_baseline:
        return 2
    return 1 if found or stale else 0


GapKey = tuple[str, str, str, str]


def gap_key(item: Regression) -> GapKey:
    return (item.requirements, item.pairing, item.scenario, item.check)


def load_known_gaps(path: Path) -> dict[GapKey, dict[str, object]]:
    if not path.exists():
        return {}
    gaps = json.loads(path.read_text())["gaps"]
    return {(gap["requirements"], gap["pairing"], gap["scenario"], gap["check"]): gap for gap in gaps}


if __name__ == "__main__":
    sys.exit(main())
