#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time each. Corpora live under build/fuzz/corpus
# (seeded from tests/fuzz/seeds/<target> when present); a crash fails the run and leaves the
# reproducer in build/fuzz/artifacts.
set -euo pipefail
seconds=${1:-15}
cd "$(dirname "$0")/.."
mkdir -p build/fuzz/artifacts
status=0
for target in build/fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  corpus=build/fuzz/corpus/$name
  mkdir -p "$corpus"
  seeds=()
  [ -d "tests/fuzz/seeds/$name" ] && seeds=("tests/fuzz/seeds/$name")
  echo "fuzz: $name for ${seconds}s"
  if ! "$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix=build/fuzz/artifacts/"$name"- -print_final_stats=1 "$corpus" "${seeds[@]}" \
       > "build/fuzz/$name.log" 2>&1; then
    echo "fuzz: $name FAILED (see build/fuzz/$name.log)"; tail -40 "build/fuzz/$name.log"; status=1
  else
    grep -E 'stat::number_of_executed_units' "build/fuzz/$name.log" | sed "s/^/fuzz: $name /" || true
  fi
done
exit $status
