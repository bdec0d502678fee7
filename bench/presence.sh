#!/bin/bash
# Presence benchmark (docs/benchmarks.md "Presence"): N clients (default 10,000) of N users join
# one presence topic at once; then the presence query and presence-stats at N members. The
# server runs on CPU 0 with --threads 1, the load generator and the queries on CPU 1.
#
#   bench/presence.sh [N]          (after `make build`; needs an open-file limit above N + 100)
#   REDIS=1 bench/presence.sh [N]  cluster mode: the same on one node over a local redis-server
#                                  (presence kept in Redis), with Redis's CPU time too
set -euo pipefail
N=${1:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SERVER:-$ROOT/build/release/realtime-server}
LG=${LOADGEN:-$ROOT/build/release/bench/realtime-loadgen}
SECRET=bench-secret-0123456789abcdef0123456789a
KEY=bench-api-key-0123456789
ulimit -n "$(ulimit -Hn)"
EXTRA=()
if [[ "${REDIS:-}" == 1 ]]; then
  RPORT=$((20000 + RANDOM % 5000))
  RDIR=$(mktemp -d)
  taskset -c 1 redis-server --port "$RPORT" --save '' --appendonly no --dir "$RDIR" --daemonize no >/dev/null 2>&1 &
  RP=$!
  trap 'kill $RP 2>/dev/null; rm -rf "$RDIR"' EXIT
  for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  EXTRA=(--redis "redis://127.0.0.1:$RPORT")
  echo "(cluster mode: redis-server on CPU 1, port $RPORT)"
fi
redis_cpu() { if [[ -n "${RP:-}" ]]; then awk '{printf "%.2f", ($14+$15)/100}' "/proc/$RP/stat"; else echo 0; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_server() {  # extra args...
  [[ -n "${RP:-}" ]] && redis-cli -p "$RPORT" flushall >/dev/null  # each run starts from an empty Redis
  PORT=$(free_port)
  taskset -c 0 "$BIN" --port "$PORT" --threads 1 --jwt-secret $SECRET --api-key $KEY --log-level warn \
    --commands-per-second 0 "${EXTRA[@]}" "$@" >/dev/null 2>&1 &
  SP=$!
  for _ in $(seq 50); do
    h=$(curl -sf "127.0.0.1:$PORT/health/realtime" || true)
    [[ -n "$h" && ( ${#EXTRA[@]} -eq 0 || "$h" == *'"redis":"up"'* ) ]] && return
    sleep 0.1
  done
  echo "server did not start" >&2; exit 1
}
cpu_seconds() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$SP/stat"; }
metric() { curl -s "127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1==m{print $2}'; }

join_storm() {  # label, server args...
  local label=$1; shift
  run_server "$@"
  local c0 t0 t1 c1 r0 r1
  c0=$(cpu_seconds); r0=$(redis_cpu); t0=$(date +%s.%N)
  taskset -c 1 "$LG" --port "$PORT" --connections "$N" --secret $SECRET --api-key $KEY --scenario fanout \
    --via ws --window 1 --messages 1 --timeout 300 --quiet >/dev/null 2>&1
  # Until the last events are written (in cluster mode the joins come back through Redis).
  local prev=-1 now
  while now=$(metric realtime_messages_sent_total); [[ "$now" != "$prev" ]]; do
    prev=$now; t1=$(date +%s.%N); c1=$(cpu_seconds); r1=$(redis_cpu); sleep 1
  done
  printf '%-34s %6.2f s wall  %6.2f s server CPU  %6.2f s redis CPU  %10s writes\n' "$label" "$(echo "$t1 - $t0" | bc)" \
    "$(echo "$c1 - $c0" | bc)" "$(echo "$r1 - $r0" | bc)" "$(metric realtime_messages_sent_total)"
  kill $SP; wait $SP 2>/dev/null || true
}

echo "== $N clients, each its own user, subscribe to one topic at once"
join_storm "no presence" 
join_storm "presence" --presence bench

echo "== queries at $N members"
for max in 1000 "$N"; do
  run_server --presence bench --presence-max-users "$max"
  rss0=$(awk '/VmRSS/{print $2}' "/proc/$SP/status")
  redis_used() { redis-cli -p "$RPORT" info memory | awk -F: '/^used_memory:/{print $2+0}'; }
  [[ -n "${RP:-}" ]] && rm0=$(redis_used)
  # The subscribers stay while the generator publishes slowly (60 messages at 4/s).
  taskset -c 1 "$LG" --port "$PORT" --connections "$N" --secret $SECRET --api-key $KEY --scenario fanout \
    --via api --window 1 --messages 60 --rate 4 --timeout 120 --quiet >/dev/null 2>&1 &
  LGP=$!
  for _ in $(seq 150); do
    [[ $(curl -s "127.0.0.1:$PORT/api/presence-stats?topic=bench" -H "Authorization: Bearer $KEY") == *"\"users\":$N,"* ]] && break
    sleep 0.2
  done
  sleep 2
  echo "--presence-max-users $max: server RSS grew $(( $(awk '/VmRSS/{print $2}' "/proc/$SP/status") - rss0 )) KiB with $N subscribed members"
  [[ -n "${RP:-}" ]] && echo "  redis used_memory grew $(( $(redis_used) - rm0 )) B: $(( ($(redis_used) - rm0) / N )) B per present user"
  taskset -c 1 python3 - "$PORT" "$KEY" <<'PY'
import http.client, json, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
h = {"Authorization": "Bearer " + sys.argv[2]}
for path in ("/api/presence?topic=bench", "/api/presence-stats?topic=bench"):
    ts = []
    for _ in range(51):
        t = time.perf_counter()
        c.request("GET", path, headers=h)
        body = c.getresponse().read()
        ts.append(time.perf_counter() - t)
    ts.sort()
    d = json.loads(body)
    what = f"{len(d['users'])} users listed" if "users" in d and isinstance(d["users"], list) else body.decode()
    print(f"  GET {path}: median {ts[25] * 1e3:.2f} ms, p90 {ts[45] * 1e3:.2f} ms, {len(body)} bytes, {what}")
PY
  kill $LGP 2>/dev/null || true; kill $SP; wait $SP $LGP 2>/dev/null || true
done
