"""Compare server-everything outcomes: each client's run through the proxy against its run direct.

Reads RESULTS/everything/<mode>/<pairing>-<client>.json (written by everything_client.py and
everything_inspector.py), prints one row per mode and client, writes RESULTS/everything.json, and
exits 1 if any scenario's outcome differs through the proxy, 2 if a direct run is missing or failed.

    python scripts/conformance/everything_compare.py conformance-results --modes stdio sse streamableHttp
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CLIENTS = ("sdk", "inspector")


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _direct_failed(client: str, outcomes: dict[str, Any]) -> bool:
    if client == "sdk":
        return "connect" in outcomes or all("error" in outcome for outcome in outcomes.values())
    return all(outcome.get("exit") != 0 for outcome in outcomes.values())


def main(argv: list[str] | None = None) -> int:
    """Print the table and the differences; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--modes", nargs="+", required=True)
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"rows": [], "differences": [], "no_baseline": []}
    print(f"{'upstream mode':<16}{'client':<11}{'direct':>10}{'via proxy':>12}")
    print("-" * 49)
    for mode in args.modes:
        for client in CLIENTS:
            folder = args.results / "everything" / mode
            direct = _load(folder / f"direct-{client}.json")
            proxied = _load(folder / f"proxy-{client}.json") or {}
            if direct is None or _direct_failed(client, direct):
                report["no_baseline"].append(f"{mode}/{client}")
                print(f"{mode:<16}{client:<11}{'FAILED':>10}{'-':>12}")
                continue
            same = [name for name in direct if proxied.get(name) == direct[name]]
            print(f"{mode:<16}{client:<11}{len(direct):>10}{f'{len(same)}/{len(direct)}':>12}")
            report["rows"].append({"mode": mode, "client": client, "scenarios": len(direct), "same": len(same)})
            for name in direct:
                if name not in same:
                    difference = {"mode": mode, "client": client, "scenario": name}
                    difference |= {
                        "direct": direct[name],
                        "proxy": proxied.get(name, proxied.get("connect", "(no outcome)")),
                    }
                    report["differences"].append(difference)
    print("(scenarios with the same outcome through the proxy as direct)")
    for item in report["differences"]:
        print(f"DIFFERENT [{item['mode']} / {item['client']}] {item['scenario']}")
        print(f"    direct: {json.dumps(item['direct'])[:400]}")
        print(f"    proxy:  {json.dumps(item['proxy'])[:400]}")
    for name in report["no_baseline"]:
        print(f"ERROR: the direct run {name} failed or is missing", file=sys.stderr)
    (args.results / "everything.json").write_text(json.dumps(report, indent=2) + "\n")
    if report["no_baseline"]:
        return 2
    return 1 if report["differences"] else 0


if __name__ == "__main__":
    sys.exit(main())
