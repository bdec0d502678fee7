#!/usr/bin/env bash
# Broadcast to N WebSocket connections spread over two cluster nodes (Redis mode), next to the
# same on one node: deliveries/s and latency percentiles. Prints a markdown table (the one in
# docs/cluster.md) and keeps every run's JSON in OUTDIR.
#
#   bench/run-cluster.sh [SERVER] [LOADGEN] [OUTDIR]
#
# Environment: RUNS (3), CONNECTIONS (10000), MESSAGES (200), SIZE (100), REDIS_PORT (6391),
# PORTS ("3821 3822"). The machine has two cores: every server process and redis-server share
# CPU 0, the load generator has CPU 1.
#
# Rows:
#   one node            no --redis: the in-memory broker
#   one node, Redis     --redis: a cluster of one, every message goes through Redis
#   two nodes, Redis    half of the connections on each node, the API call on the first
# each with the API waiting for the delivery count, and with "wait": false (fire-and-forget);
# then the same three with every connection subscribed to one topic and a WebSocket publisher
# keeping WINDOW (256) `publish` commands in flight (FANOUT_MESSAGES, 2000, messages); and those
# three again with the topic kept in history (`--history bench=1000/300`: on one node in memory,
# with Redis in Redis, where one script per message assigns its offset and publishes it).
set -euo pipefail

SERVER=${1:-build/release/realtime-server}
LOADGEN=${2:-build/release/bench/realtime-loadgen}
OUT=${3:-$(mktemp -d /tmp/realtime-cluster-bench.XXXXXX)}
RUNS=${RUNS:-3}
N=${CONNECTIONS:-10000}
M=${MESSAGES:-200}
SIZE=${SIZE:-100}
REDIS_PORT=${REDIS_PORT:-6391}
read -r PORT_A PORT_B <<<"${PORTS:-3821 3822}"
SECRET=bench-secret-0123456789abcdef0123456789a
API_KEY=bench-api-key-0123456789   # at least 16 bytes
mkdir -p "$OUT"
cp "$SERVER" "$OUT/realtime-server"   # a private copy: others may rebuild build/release meanwhile
SERVER=$OUT/realtime-server
command -v redis-server >/dev/null || { echo "redis-server is missing: run scripts/install-deps.sh" >&2; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap cleanup EXIT

wait_http() {
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$1/health/realtime" >/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not come up" >&2
  exit 1
}

start_redis() {
  taskset -c 0 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --logfile "$OUT/redis.log" &
  pids+=($!)
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis-server did not start" >&2
  exit 1
}

start_node() {  # port, log, extra args...
  local port=$1 log=$2
  shift 2
  taskset -c 0 "$SERVER" --port "$port" --threads 1 --jwt-secret "$SECRET" --api-key "$API_KEY" \
    --log-level warn "$@" >"$log" 2>&1 &
  pids+=($!)
  wait_http "$port"
}

run_case() {  # tag, nodes (1|2), redis (yes|no), wait (yes|no|window), history (yes|no)
  local tag=$1 nodes=$2 redis=$3 wait=$4 history=${5:-no}
  for run in $(seq "$RUNS"); do
    local redis_args=() ports=(--port "$PORT_A") extra=()
    if [[ $redis == yes ]]; then
      start_redis
      redis_args=(--redis "redis://127.0.0.1:$REDIS_PORT")
    fi
    local node_args=("${redis_args[@]}" --publish-patterns bench --commands-per-second 0)
    [[ $history == yes ]] && node_args+=(--history bench=1000/300)
    start_node "$PORT_A" "$OUT/$tag-$run.a.log" "${node_args[@]}" --node-id a
    local server_pid=${pids[-1]}
    if [[ $nodes == 2 ]]; then
      start_node "$PORT_B" "$OUT/$tag-$run.b.log" "${node_args[@]}" --node-id b
      ports=(--ports "$PORT_A,$PORT_B")
    fi
    local scenario=(--scenario broadcast --messages "$M")
    [[ $wait == no ]] && extra=(--no-wait)
    [[ $wait == window ]] && scenario=(--scenario fanout --via ws --window "${WINDOW:-256}" --messages "${FANOUT_MESSAGES:-2000}")
    taskset -c 1 "$LOADGEN" "${ports[@]}" --secret "$SECRET" --api-key "$API_KEY" "${scenario[@]}" \
      --connections "$N" --size "$SIZE" --server-pid "$server_pid" --quiet "${extra[@]}" \
      >"$OUT/$tag-$run.json" 2>"$OUT/$tag-$run.stderr" || echo "$tag-$run: load generator exit $?" >&2
    cleanup
    sleep 1
  done
}

# CASES selects some of them (results already in OUTDIR are kept and summarized too).
CASES=${CASES:-"one-node one-node-redis two-nodes one-node-nowait one-node-redis-nowait two-nodes-nowait
                one-node-window one-node-redis-window two-nodes-window
                one-node-window-history one-node-redis-window-history two-nodes-window-history"}
want() { [[ " $(echo $CASES) " == *" $1 "* ]]; }
want one-node && run_case one-node 1 no yes
want one-node-redis && run_case one-node-redis 1 yes yes
want two-nodes && run_case two-nodes 2 yes yes
want one-node-nowait && run_case one-node-nowait 1 no no
want one-node-redis-nowait && run_case one-node-redis-nowait 1 yes no
want two-nodes-nowait && run_case two-nodes-nowait 2 yes no
want one-node-window && run_case one-node-window 1 no window
want one-node-redis-window && run_case one-node-redis-window 1 yes window
want two-nodes-window && run_case two-nodes-window 2 yes window
want one-node-window-history && run_case one-node-window-history 1 no window yes
want one-node-redis-window-history && run_case one-node-redis-window-history 1 yes window yes
want two-nodes-window-history && run_case two-nodes-window-history 2 yes window yes

python3 - "$OUT" "$N" "$M" <<'EOF'
import glob, json, statistics, sys
out, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [("one node, in-memory", "one-node"), ("one node, Redis", "one-node-redis"),
        ("two nodes, Redis", "two-nodes")]
def fmt(x): return f"{x:,.0f}"
print(f"Broadcast of {m} messages (API) or publish of 2000 (WebSocket, 256 in flight) to {n:,} connections "
      "(median of the runs; min-max in brackets).\n")
print("| setup | publisher | deliveries/s | p50 ms | p99 ms | max ms | lost | reply p50 ms |")
print("|---|---|---|---|---|---|---|---|")
for label, tag in rows:
    for wait, suffix in (("API, waits for counts", ""), ("API, `\"wait\": false`", "-nowait"),
                         ("WebSocket `publish` to a topic, 256 in flight", "-window"),
                         ("the same, topic with history", "-window-history")):
        runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{tag}{suffix}-[0-9]*.json"))]
        runs = [r for r in runs if "delivery" in r]
        if not runs:
            continue
        d = [r["delivery"] for r in runs]
        rate = [x["deliveries_per_second"] for x in d]
        lat = lambda q: statistics.median(x["latency_us"][q] for x in d) / 1000
        lost = sum(x["expected"] - x["unique"] for x in d)
        reply = statistics.median(x["reply_latency_us"]["p50"] for x in d) / 1000
        print(f"| {label} | {wait} | {fmt(statistics.median(rate))} ({fmt(min(rate))}-{fmt(max(rate))}) | "
              f"{lat('p50'):.1f} | {lat('p99'):.1f} | {lat('max'):.1f} | {lost} | {reply:.1f} |")
print(f"\nraw results: {out}")
EOF
