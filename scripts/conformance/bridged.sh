# Part 3 of scripts/conformance.sh (sourced after lib.sh): the era bridge, judged by the official suite.
#
# Each requirement set runs against the fixture limited to that set's own era (the baseline, `direct`), and
# through the proxy against the fixture limited to the other era, which the proxy bridges:
#   direct         2026-07-28 set: fixture --era modern (HTTP);   2025-11-25 set: fixture --era handshake (HTTP)
#   bridged-stdio  2026-07-28 set: proxy -> fixture --era handshake over stdio; 2025-11-25: --era modern over stdio
#   bridged-http   the same with the fixtures over Streamable HTTP
# Every check that passes direct must pass bridged, or be listed in known-gaps-bridge.json with its reason.
# Each bridged-stdio proxy is warmed first (netutil.py warm): its per-session children start before the suite does.
# Results land in RESULTS/bridge/ (the same layout as part 1, read by compare.py).

run_bridged() {
  local RESULTS="$RESULTS/bridge"  # every helper of lib.sh writes under this run's own folder
  mkdir -p "$RESULTS/logs"
  local modern_port handshake_port port era_of status=0
  # The proxies as resumable as the fixture with its event store (as part 1's proxy-stdio): every answer a primed
  # event stream, quiet streams closed for the client to poll.
  local resumable=(SHADOWPROXY_STREAM_AFTER=0 SHADOWPROXY_POLL_AFTER=0.1 SHADOWPROXY_SSE_RETRY=0.1)
  declare -A era_of=([2026-07-28]=handshake [2025-11-25]=modern)
  modern_port="$(free_port)"
  handshake_port="$(free_port)"
  start_server fixture-modern "http://127.0.0.1:$modern_port/mcp" "" \
    "$PYTHON_BIN" "$FIXTURE" --transport http --port "$modern_port" --era modern \
    || fail_setup "the 2026-07-28-only fixture did not start (see $RESULTS/logs/fixture-modern.log)"
  start_server fixture-handshake "http://127.0.0.1:$handshake_port/mcp" "" \
    "$PYTHON_BIN" "$FIXTURE" --transport http --port "$handshake_port" --era handshake \
    || fail_setup "the handshake-only fixture did not start (see $RESULTS/logs/fixture-handshake.log)"
  declare -A url_of=([modern]="http://127.0.0.1:$modern_port/mcp" [handshake]="http://127.0.0.1:$handshake_port/mcp")

  run_suite direct 2026-07-28 "${url_of[modern]}"
  run_suite direct 2025-11-25 "${url_of[handshake]}"
  for req in "${REQUIREMENTS[@]}"; do
    local era="${era_of[$req]}"
    port="$(free_port)"
    if start_proxy "bridged-stdio-$era" "$port" "$PYTHON_BIN $FIXTURE --transport stdio --era $era" "${resumable[@]}" \
      && "$PYTHON" "$HERE/netutil.py" warm "http://127.0.0.1:$port/mcp" 2>>"$RESULTS/logs/bridged-stdio-$era.log"; then
      run_suite bridged-stdio "$req" "http://127.0.0.1:$port/mcp"
    fi
    stop_server "bridged-stdio-$era"
    port="$(free_port)"
    if start_proxy "bridged-http-$era" "$port" "${url_of[$era]}" "${resumable[@]}"; then
      run_suite bridged-http "$req" "http://127.0.0.1:$port/mcp"
    fi
    stop_server "bridged-http-$era"
  done
  stop_server fixture-modern
  stop_server fixture-handshake
  echo
  echo "== bridged conformance checks (requirements x pairing; baseline: the fixture in that era only) =="
  "$PYTHON" "$HERE/compare.py" "$RESULTS" --requirements "${REQUIREMENTS[@]}" \
    --pairings bridged-stdio bridged-http --known-gaps "$HERE/known-gaps-bridge.json" || status=$?
  return "$status"
}
