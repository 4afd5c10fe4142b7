# Part 2 of scripts/conformance.sh (sourced after lib.sh): @modelcontextprotocol/server-everything in each
# of its transports, driven by the mcp SDK client and by the Inspector CLI, direct and through the proxy.
# Outcomes go to RESULTS/everything/<mode>/<direct|proxy>-<sdk|inspector>.json; everything_compare.py judges.

EVERYTHING_MODES=(stdio sse streamableHttp)
CLIENT_TIMEOUT=180  # seconds for one client's whole scenario list

# drive DIR PAIRING SDK_FLAG SDK_TARGET INSPECTOR_TARGET...: run both clients against one target.
drive() {
  local dir="$1" pairing="$2" sdk_flag="$3" sdk_target="$4" log="$RESULTS/logs/everything-$(basename "$1")-$2.log"
  shift 4
  timeout "$CLIENT_TIMEOUT" "$PYTHON" "$HERE/everything_client.py" "$sdk_flag" "$sdk_target" \
    --out "$dir/$pairing-sdk.json" >>"$log" 2>&1 || true
  timeout "$CLIENT_TIMEOUT" "$PYTHON" "$HERE/everything_inspector.py" --out "$dir/$pairing-inspector.json" \
    -- "$@" >>"$log" 2>&1 || true
}

run_everything() {
  local server mode dir port url upstream proxy_port
  server="$(command -v mcp-server-everything)" || fail_setup "mcp-server-everything is not installed in $TOOLS/mcp"
  for mode in "${EVERYTHING_MODES[@]}"; do
    dir="$RESULTS/everything/$mode"
    mkdir -p "$dir"
    if [[ "$mode" == stdio ]]; then
      drive "$dir" direct --stdio "$server stdio" "$server" stdio
      upstream="$server stdio"
    else
      port="$(free_port)"
      url="http://127.0.0.1:$port/$([[ "$mode" == sse ]] && echo sse || echo mcp)"
      start_server "everything-$mode" "$url" "" env PORT="$port" "$server" "$mode" \
        || fail_setup "server-everything ($mode) did not start (see $RESULTS/logs/everything-$mode.log)"
      drive "$dir" direct "$([[ "$mode" == sse ]] && echo --sse || echo --http)" "$url" "$url"
      upstream="$url"
    fi
    if proxy_available; then
      proxy_port="$(free_port)"
      if start_proxy "everything-proxy-$mode" "$proxy_port" "$upstream"; then
        drive "$dir" proxy --http "http://127.0.0.1:$proxy_port/mcp" "http://127.0.0.1:$proxy_port/mcp"
      fi
      stop_server "everything-proxy-$mode"
    fi
    stop_server "everything-$mode"
    printf '  %-15s done\n' "$mode"
  done
  "$PYTHON" "$HERE/everything_compare.py" "$RESULTS" --modes "${EVERYTHING_MODES[@]}"
}
