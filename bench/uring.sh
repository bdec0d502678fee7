#!/usr/bin/env bash
# --io-uring on against the writev path (--io-uring off), at
# 10,000 subscribers: full speed (256 `publish` in flight) and fixed rates (one message per loop
# pass). Server on CPU 0 with --threads 1, load generator on CPU 1.
# Usage: bench/uring.sh [build dir]   Env: N (10000), RATES ("20 40 60"), RATE_SECONDS (10), RUNS (2),
# FULL (1: also the full-speed run). Prints one line per run: deliveries/s and the server's CPU time per delivery.
set -euo pipefail
BUILD=${1:-build/release}
N=${N:-10000}; RATES=${RATES:-"20 40 60"}; RATE_SECONDS=${RATE_SECONDS:-10}; RUNS=${RUNS:-2}
SECRET=bench-secret-0123456789abcdef0123456789a; KEY=bench-api-key-0123456789; PORT=${PORT:-3917}
ulimit -n "$(ulimit -Hn)"
run() {  # mode label loadgen-args...
  local mode=$1 label=$2; shift 2
  local flag=off; [ "$mode" = uring ] && flag=on
  taskset -c 0 "$BUILD/realtime-server" --io-uring $flag --port "$PORT" --threads 1 --jwt-secret $SECRET --api-key $KEY \
    --max-outbound-bytes 1048576 --publish-patterns bench --commands-per-second 0 --log-level warn &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  local out; out=$(taskset -c 1 "$BUILD/bench/realtime-loadgen" --port "$PORT" --secret $SECRET --api-key $KEY \
    --connections "$N" --server-pid "$pid" --quiet --scenario fanout --via ws --size 100 "$@" || true)
  kill "$pid"; wait "$pid" || true
  python3 -c "
import json,sys
r=json.loads(sys.argv[3]); d=r['delivery']; cpu=d['server_cpu_seconds']; n=d['received']
print(f\"{sys.argv[1]:6} {sys.argv[2]:7} {d['deliveries_per_second']:>12,.0f} deliveries/s  received {n}/{d['expected']}  server CPU {cpu:.2f} s = {cpu/max(n,1)*1e6:.3f} us/delivery  p50 {d['latency_us']['p50']/1000:.1f} ms p99 {d['latency_us']['p99']/1000:.1f} ms\", flush=True)" "$mode" "$label" "$out"
}
for i in $(seq "$RUNS"); do
  for mode in writev uring; do
    [ "${FULL:-1}" = 1 ] && run $mode full --window 256 --messages 2000
    for r in $RATES; do run $mode "rate$r" --window 256 --rate "$r" --messages $((r * RATE_SECONDS)); done
  done
done
