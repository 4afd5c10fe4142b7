"""Drive @modelcontextprotocol/server-everything with the MCP Inspector CLI and record what happened.

    python scripts/conformance/everything_inspector.py --out FILE -- http://127.0.0.1:PORT/mcp
    python scripts/conformance/everything_inspector.py --out FILE -- mcp-server-everything stdio

One `mcp-inspector --cli` process per scenario (the CLI does one method per run): list tools, echo,
the long-running operation, the sampling tool (the CLI declares no sampling capability, so the server
hides that tool: the outcome is its error, which must be the same through the proxy), a read of a
static resource (the dynamic ones embed the time) and a prompt. The CLI has no resources/subscribe
method; subscriptions are covered by the SDK client. Outcomes are the CLI's JSON (result or error
envelope) and exit status, written for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CALL_TIMEOUT = 60  # seconds per CLI run (node start-up plus one call)
SCENARIOS: dict[str, list[str]] = {
    "tools": ["--method", "tools/list"],
    "echo": ["--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=hello through shadowproxy"],
    "long_running": [
        "--method",
        "tools/call",
        "--tool-name",
        "trigger-long-running-operation",
        "--tool-args-json",
        '{"duration": 0.5, "steps": 5}',
    ],
    "sampling": [
        "--method",
        "tools/call",
        "--tool-name",
        "trigger-sampling-request",
        "--tool-args-json",
        '{"prompt": "capital of France?"}',
    ],
    "resource": ["--method", "resources/read", "--uri", "demo://resource/static/document/features.md"],
    "prompt": ["--method", "prompts/get", "--prompt-name", "simple-prompt"],
}


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip()


def run_scenario(inspector: str, target: list[str], args: list[str], home: Path) -> dict[str, Any]:
    """One CLI run: its exit status and its JSON output (stdout on success, the error envelope otherwise)."""
    # The CLI keeps a catalog and client config under $HOME; a throwaway home keeps runs independent.
    env = {**os.environ, "HOME": str(home), "MCP_CATALOG_PATH": str(home / "catalog.json")}
    command = [inspector, "--cli", *target, *args, "--format", "json", "--quiet"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CALL_TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"exit": None, "output": f"timed out after {CALL_TIMEOUT}s"}
    return {"exit": done.returncode, "output": _parsed(done.stdout if done.stdout.strip() else done.stderr)}


def main(argv: list[str] | None = None) -> int:
    """Run every scenario against the target and write the outcomes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--inspector", default="mcp-inspector")
    parser.add_argument("target", nargs="+", help="server URL, or command line of a stdio server")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inspector-home-") as home:
        outcomes = {
            name: run_scenario(args.inspector, args.target, scenario, Path(home))
            for name, scenario in SCENARIOS.items()
        }
    args.out.write_text(json.dumps(outcomes, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
