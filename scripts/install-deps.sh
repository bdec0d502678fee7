#!/usr/bin/env bash
# Installs every Debian package the project builds, tests, packages and benchmarks with
# (dpkg-dev and file: CPack computes the .deb's Depends with dpkg-shlibdeps).
# Idempotent: packages already present are not fetched again; apt-get update runs only
# when something is missing.
set -euo pipefail

packages=(
  build-essential cmake make pkg-config git ca-certificates dpkg-dev file
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev zlib1g-dev libhiredis-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  python3 python3-websockets python3-cryptography python3-prometheus-client
  python3-venv python3-pip python3-setuptools python3-wheel
  nodejs chromium fonts-dejavu-core
  curl procps
  redis-server
)

# One dpkg-query for the whole list: `make run` calls this every time.
# dpkg-query exits 1 when any of them is unknown (not installed yet): not an error here.
installed=" $({ dpkg-query -W -f='${Package}=${Status}\n' "${packages[@]}" 2>/dev/null || true; } \
  | sed -n 's/=install ok installed$//p' | tr '\n' ' ') "
missing=()
for p in "${packages[@]}"; do
  [[ "$installed" == *" $p "* ]] || missing+=("$p")
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node's package manager comes with some nodejs builds and separately with others.
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

# Two Boost versions side by side break the build in confusing ways: refuse early.
if dpkg-query -W -f='${Status}' libboost1.74-dev 2>/dev/null | grep -q 'install ok installed'; then
  echo "install-deps: libboost1.74-dev is installed next to Boost 1.81; remove it (apt-get remove libboost1.74-dev)" >&2
  exit 1
fi

# npm packages (the JavaScript client's build and test tools, the browser test's driver, the JOSE
# library the JWKS tests sign with), from each package-lock.json; reinstalled only when the lock
# file changes.
root=$(cd "$(dirname "$0")/.." && pwd)
for dir in clients/js tests/e2e tests/integration/node; do
  lock="$root/$dir/package-lock.json"
  [ -f "$lock" ] || continue
  stamp="$root/$dir/node_modules/.installed-lock"
  if [ ! -f "$stamp" ] || ! cmp -s "$lock" "$stamp"; then
    echo "install-deps: npm ci in $dir"
    (cd "$root/$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$lock" "$stamp"
  fi
done
