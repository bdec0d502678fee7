#!/usr/bin/env bash
# Installs the benchmark's peer servers (Node `ws`, Socket.IO) from package-lock.json with
# `npm ci`. Idempotent: runs only when node_modules is missing or older than the lock file.
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
lock="$dir/package-lock.json"
stamp="$dir/node_modules/.package-lock.json"  # written by npm ci on every install

if [ -f "$stamp" ] && [ ! "$lock" -nt "$stamp" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "bench/peers/install.sh: npm not found (run scripts/install-deps.sh)" >&2
  exit 1
fi
echo "bench/peers: npm ci"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
touch "$stamp"
