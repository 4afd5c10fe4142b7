# Helpers for scripts/conformance.sh (sourced; expects ROOT, HERE, PYTHON, TOOLS, RESULTS and the timeouts).
# Servers run in their own process group (setsid) so that stopping one also stops what it spawned.

declare -A SERVER_PIDS=()
SERVER_LIFETIME=1800  # seconds: a hard bound on every server, even if this script is killed outright
NODE_VERSION_PINNED="$(sed -n 's/.*"node": *"\([0-9.]*\)".*/\1/p' "$HERE/node/package.json")"

fail_setup() {
  echo "conformance: $*" >&2
  exit 2
}

free_port() {
  "$PYTHON" "$HERE/netutil.py" free-port
}

node_major() {
  "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0
}

# Use the machine's Node if it is new enough; otherwise install the pinned `node` package from the npm
# registry into $TOOLS/node (the machine's npm only needs to be able to run that install).
ensure_node() {
  local system_node
  system_node="$(command -v node || true)"
  if [[ -n "$system_node" ]] && (( $(node_major "$system_node") >= NODE_MAJOR_MIN )); then
    return 0
  fi
  local local_node="$TOOLS/node/node_modules/.bin/node"
  if [[ ! -x "$local_node" ]] || [[ "$("$local_node" --version 2>/dev/null)" != "v$NODE_VERSION_PINNED" ]]; then
    command -v npm >/dev/null || fail_setup "Node >= $NODE_MAJOR_MIN is needed and there is no npm to install it with"
    echo "installing node@$NODE_VERSION_PINNED into $TOOLS/node (machine has ${system_node:-no node})" >&2
    mkdir -p "$TOOLS/node"
    cp "$HERE/node/package.json" "$TOOLS/node/package.json"
    (cd "$TOOLS/node" && timeout "$INSTALL_TIMEOUT" npm install --no-audit --no-fund --no-package-lock >&2) \
      || fail_setup "npm could not install node@$NODE_VERSION_PINNED into $TOOLS/node"
  fi
  # The machine's npm may trust the registry's CA only through the global npmrc beside its own Node; run by the
  # pinned Node it looks for that file elsewhere, so the setting is carried over.
  if [[ -z "${npm_config_cafile:-}" ]] && command -v npm >/dev/null; then
    local cafile
    cafile="$(npm config get cafile 2>/dev/null || true)"
    if [[ -n "$cafile" && -f "$cafile" ]]; then
      export npm_config_cafile="$cafile"
    fi
  fi
  export PATH="$TOOLS/node/node_modules/.bin:$PATH"
  (( $(node_major node) >= NODE_MAJOR_MIN )) || fail_setup "node on PATH is $(node --version), need >= $NODE_MAJOR_MIN"
}

# Install the pinned suite, Inspector and server-everything (scripts/conformance/tools/package-lock.json)
# into $TOOLS/mcp, again whenever the lock file changes.
ensure_tools() {
  local want have=""
  want="$(sha256sum "$HERE/tools/package-lock.json" | cut -d' ' -f1)"
  [[ -f "$TOOLS/mcp/.lock-sha256" ]] && have="$(cat "$TOOLS/mcp/.lock-sha256")"
  if [[ "$want" != "$have" ]] || [[ ! -x "$TOOLS/mcp/node_modules/.bin/conformance" ]]; then
    echo "installing the pinned MCP tools into $TOOLS/mcp" >&2
    mkdir -p "$TOOLS/mcp"
    cp "$HERE/tools/package.json" "$HERE/tools/package-lock.json" "$TOOLS/mcp/"
    (cd "$TOOLS/mcp" && timeout "$INSTALL_TIMEOUT" npm ci --no-audit --no-fund >&2) \
      || fail_setup "npm ci failed in $TOOLS/mcp"
    echo "$want" >"$TOOLS/mcp/.lock-sha256"
  fi
  export PATH="$TOOLS/mcp/node_modules/.bin:$PATH"
}

# start_server NAME URL STATUS COMMAND...: start COMMAND in its own process group, logging to
# logs/NAME.log, and wait until URL answers (with HTTP STATUS, or anything when STATUS is empty).
start_server() {
  local name="$1" url="$2" want="$3"
  shift 3
  setsid timeout "$SERVER_LIFETIME" "$@" >"$RESULTS/logs/$name.log" 2>&1 </dev/null &
  SERVER_PIDS[$name]=$!
  local wait_args=("$url" --timeout "$START_TIMEOUT" --pid "${SERVER_PIDS[$name]}")
  [[ -n "$want" ]] && wait_args+=(--status "$want")
  if ! "$PYTHON" "$HERE/netutil.py" wait "${wait_args[@]}" 2>>"$RESULTS/logs/$name.log"; then
    echo "conformance: $name did not come up; last lines of its log:" >&2
    tail -n 20 "$RESULTS/logs/$name.log" >&2
    stop_server "$name"
    return 1
  fi
}

stop_server() {
  local name="$1" pid="${SERVER_PIDS[$1]:-}"
  [[ -z "$pid" ]] && return 0
  unset "SERVER_PIDS[$name]"
  # TERM to the group leader only: `timeout` passes it on once; a second TERM would force the proxy to
  # skip its graceful shutdown. Whatever is left of the group after the grace period is killed.
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  local name
  for name in "${!SERVER_PIDS[@]}"; do stop_server "$name"; done
}

SHADOWPROXY="${SHADOWPROXY:-$(dirname "$(command -v "$PYTHON")")/shadowproxy}"

proxy_available() {
  [[ -x "$SHADOWPROXY" ]] && "$SHADOWPROXY" run --help >/dev/null 2>&1
}

# start_proxy NAME PORT UPSTREAM [VAR=VALUE...]: shadowproxy serving http://127.0.0.1:PORT/mcp in front of
# UPSTREAM, with the given environment variables.
start_proxy() {
  local name="$1" port="$2" upstream="$3"
  start_server "$name" "http://127.0.0.1:$port/healthz" 200 \
    env "${@:4}" "$SHADOWPROXY" run --upstream "$upstream" --port "$port"
}

# run_suite PAIRING REQUIREMENTS URL: one `conformance server` run; its per-check JSON goes to
# RESULTS/PAIRING/REQUIREMENTS. The suite's own exit status is not ours: compare.py decides.
run_suite() {
  local pairing="$1" req="$2" url="$3" log="$RESULTS/logs/suite-$1-$2.log" rc=0
  timeout "$SUITE_TIMEOUT" conformance server --url "$url" --requirements "$req" \
    -o "$RESULTS/$pairing/$req" >"$log" 2>&1 || rc=$?
  printf '  %-12s %-11s %s (suite exit %s)\n' "$pairing" "$req" "$(grep -E '^Total:' "$log" || echo 'no summary')" "$rc"
}
