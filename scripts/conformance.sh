#!/usr/bin/env bash
# Protocol conformance of ShadowProxy, judged by tools nobody on this team wrote.
#
#  1. The official suite (@modelcontextprotocol/conformance, pinned) runs `conformance server` for the
#     2025-11-25 and 2026-07-28 requirement sets against our fixture server (tests/conformance/):
#       direct         the fixture over Streamable HTTP
#       proxy-stdio    shadowproxy in front of the fixture spawned over stdio
#       proxy-http     shadowproxy in front of the fixture over Streamable HTTP
#     Every check that passes direct must pass through each pairing (scripts/conformance/compare.py).
#  2. @modelcontextprotocol/server-everything (stdio, sse, streamableHttp) is driven direct and through
#     the proxy by the mcp SDK client and by the MCP Inspector CLI; the outcomes must be the same
#     (scripts/conformance/everything.sh).
#  3. The era bridge (scripts/conformance/bridged.sh): each requirement set against the fixture limited to the
#     other era, through the proxy, compared with the set against the fixture limited to its own era.
#
# Node >= 22 and the pinned npm packages are installed under .tools/ (from the npm registry) on first run.
# Results (the suite's JSON per check, logs, summary.json) land in conformance-results/.
# Exit status: 0 all equal; 1 a check or outcome differs through the proxy; 2 a direct run could not run.
#
# Environment: PYTHON (default: python on PATH, with the project installed), CONFORMANCE_RESULTS,
# CONFORMANCE_TOOLS, CONFORMANCE_SKIP_EVERYTHING=1 to skip part 2, CONFORMANCE_SKIP_BRIDGE=1 to skip part 3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/conformance"
PYTHON="${PYTHON:-python}"
TOOLS="${CONFORMANCE_TOOLS:-$ROOT/.tools}"
RESULTS="${CONFORMANCE_RESULTS:-$ROOT/conformance-results}"
REQUIREMENTS=(2025-11-25 2026-07-28)
NODE_MAJOR_MIN=22
SUITE_TIMEOUT=300     # seconds per `conformance server` run (a clean run takes a few seconds)
START_TIMEOUT=30      # seconds for a server to answer
INSTALL_TIMEOUT=600   # seconds for an npm install

source "$HERE/lib.sh"
trap stop_all EXIT
trap 'exit 130' INT TERM

ensure_node
ensure_tools
rm -rf "$RESULTS"
mkdir -p "$RESULTS/logs"

FIXTURE="$ROOT/tests/conformance/conformance_fixture.py"
PYTHON_BIN="$(command -v "$PYTHON")"

# --- 1. the official suite: direct, then through the proxy -----------------------------------------------
fixture_port="$(free_port)"
start_server fixture-http "http://127.0.0.1:$fixture_port/mcp" "" \
  "$PYTHON_BIN" "$FIXTURE" --transport http --port "$fixture_port" \
  || fail_setup "the fixture server did not start (see $RESULTS/logs/fixture-http.log)"
for req in "${REQUIREMENTS[@]}"; do
  run_suite direct "$req" "http://127.0.0.1:$fixture_port/mcp"
done

pairings=()
if proxy_available; then
  stdio_port="$(free_port)"
  # The proxy as resumable as the SDK's own server with an event store: every answer a primed event stream
  # (stream_after 0; by default answers faster than 0.1 s go out as JSON). Over stdio the fixture's
  # test_reconnection cannot close its SSE stream itself: the proxy's polling (close a quiet stream once the
  # client holds an event id) does it, and every other check must hold with it.
  if start_proxy proxy-stdio "$stdio_port" "$PYTHON_BIN $FIXTURE --transport stdio" SHADOWPROXY_STREAM_AFTER=0 SHADOWPROXY_POLL_AFTER=0.1 SHADOWPROXY_SSE_RETRY=0.1; then
    for req in "${REQUIREMENTS[@]}"; do run_suite proxy-stdio "$req" "http://127.0.0.1:$stdio_port/mcp"; done
  fi
  stop_server proxy-stdio
  pairings+=(proxy-stdio)

  http_port="$(free_port)"
  if start_proxy proxy-http "$http_port" "http://127.0.0.1:$fixture_port/mcp"; then
    for req in "${REQUIREMENTS[@]}"; do run_suite proxy-http "$req" "http://127.0.0.1:$http_port/mcp"; done
  fi
  stop_server proxy-http
  pairings+=(proxy-http)
else
  # Counted as runs that never happened: every check passing direct then fails to compare.
  echo "shadowproxy is not runnable (\`$SHADOWPROXY run --help\` failed); proxy pairings have no results" >&2
  pairings+=(proxy-stdio proxy-http)
fi
stop_server fixture-http

status=0
echo
echo "== conformance checks (requirements x pairing) =="
"$PYTHON" "$HERE/compare.py" "$RESULTS" --requirements "${REQUIREMENTS[@]}" --pairings "${pairings[@]}" || status=$?

# --- 2. server-everything, driven by the SDK client and the Inspector CLI ---------------------------------
if [[ "${CONFORMANCE_SKIP_EVERYTHING:-0}" != 1 ]]; then
  echo
  echo "== server-everything (direct vs. through the proxy) =="
  everything_status=0
  source "$HERE/everything.sh"
  run_everything || everything_status=$?
  if (( everything_status > status )); then status=$everything_status; fi
fi

# --- 3. the era bridge: each set against the fixture of the other era, through the proxy ---------------------
if [[ "${CONFORMANCE_SKIP_BRIDGE:-0}" != 1 ]]; then
  bridge_status=0
  source "$HERE/bridged.sh"
  run_bridged || bridge_status=$?
  if (( bridge_status > status )); then status=$bridge_status; fi
fi

echo
echo "results: $RESULTS (summary.json, everything.json, bridge/, per-run checks.json, logs/)"
exit "$status"
