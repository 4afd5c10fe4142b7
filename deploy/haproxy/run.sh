#!/usr/bin/env bash
# Three ShadowProxy instances on one Redis behind HAProxy, on this machine; Ctrl-C stops them all.
#
#   deploy/haproxy/run.sh [CONFIG]        # CONFIG: a shadowproxy.yaml (default: deploy/haproxy/shadowproxy.yaml)
#
# Clients connect to http://127.0.0.1:${LB_PORT:-8765}/mcp; the instances listen on the three ports after it,
# Redis on ${REDIS_PORT:-6390}. Needs shadowproxy, redis-server and haproxy (apt-get install redis-server haproxy)
# on PATH. Logs go to a temporary directory, named at start.
set -euo pipefail
# Each process in its own process group: Ctrl-C (SIGINT to the terminal's foreground group) reaches this script
# alone, which then sends each process one SIGTERM. Without it every instance got the SIGINT and then the SIGTERM,
# and a second signal makes shadowproxy exit at once instead of draining.
set -m
here="$(cd "$(dirname "$0")" && pwd)"
config="${1:-$here/shadowproxy.yaml}"
lb_port="${LB_PORT:-8765}"
redis_port="${REDIS_PORT:-6390}"
logs="$(mktemp -d)"
for tool in shadowproxy redis-server haproxy; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is not on PATH" >&2; exit 1; }
done

pids=()
stop() {
    # Once, to the end: a second Ctrl-C, or the terminal or a pipe closing meanwhile, must not cut it short.
    trap '' INT TERM HUP PIPE
    trap - EXIT
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait
}
trap stop EXIT
# The processes are in groups of their own: whatever ends this script must stop them (a closed terminal too).
trap 'exit 0' INT TERM HUP PIPE

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$logs/redis.log" 2>&1 &
pids+=($!)
export SHADOWPROXY_STORE="redis://127.0.0.1:$redis_port/0"
index=0
for name in A B C; do
    index=$((index + 1))
    port=$((lb_port + index))
    shadowproxy run --config "$config" --port "$port" >"$logs/instance-$name.log" 2>&1 &
    pids+=($!)
    export "BACKEND_$name=127.0.0.1:$port"
done
LB_BIND="127.0.0.1:$lb_port" haproxy -db -f "$here/haproxy.cfg" >"$logs/haproxy.log" 2>&1 &
pids+=($!)
echo "serving http://127.0.0.1:$lb_port/mcp through HAProxy to ports $((lb_port + 1))-$((lb_port + 3)); logs in $logs"
wait -n "${pids[@]}" || true
echo "run.sh: a process exited; stopping the rest (logs in $logs)" >&2
exit 1
