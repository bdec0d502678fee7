# Boundary Realtime — top-level commands. Everything installs what it needs first.
#   make run      build the server only (release) and start it in dev mode
#   make test     build everything; unit, integration, sanitizer and short fuzz runs
#   make build    everything in the release tree (server, tests, load generator, micro-benchmarks)
#   make server   leaves the server at build/release/realtime-server
#   make package  build/release/realtime-server_<version>_<arch>.deb (docs/operations.md)

JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 15
ARGS ?=

.PHONY: all deps js server build build-debug build-fuzz run package test test-release test-debug fuzz fuzz-long clean bench bench-quick

# cmake --build runs make underneath: no "Entering directory" lines from it.
MAKEFLAGS += --no-print-directory

all: build

deps:
	@./scripts/install-deps.sh

# The JavaScript client is built first: the server embeds it for the dev page. It is rebuilt
# only when its sources or package files change.
JS_DIST := clients/js/dist/index.js
JS_INPUTS := $(wildcard clients/js/src/*) $(wildcard clients/js/package.json clients/js/package-lock.json clients/js/tsconfig.json)

js: $(JS_DIST)

$(JS_DIST): $(JS_INPUTS) | deps
	@cd clients/js && npm run --silent build
	@touch $@

# Only what running needs. Quiet: the "Built target" lines of an up-to-date tree are dropped;
# compile lines, warnings and errors stay, and a failed build still fails (pipefail).
server: SHELL := /bin/bash
server: .SHELLFLAGS := -o pipefail -c
server: js
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target realtime-server \
	  | { grep -v -e '\] Built target ' -e '\] Embedding web assets$$' || true; }

build: js
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

build-debug: js
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug -j $(JOBS)

build-fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

run: server
	@./build/release/realtime-server $(ARGS)

# The server's Debian package (CPack, component `server` only), from the release tree.
package: server
	@cd build/release && { cpack -G DEB -D CPACK_COMPONENTS_ALL=server >cpack.log 2>&1 || { cat cpack.log >&2; exit 1; }; }
	@ls build/release/*.deb

test-release: build
	ctest --preset release -j 2

# The sanitizer build runs the unit tests and the integration tests against an instrumented
# server; the client and browser suites (label `clients`) run once, against the release build.
test-debug: build-debug
	ctest --preset debug -j 2 -LE clients

fuzz: build-fuzz
	@./scripts/run-fuzz.sh $(FUZZ_SECONDS)

# The longer campaign documented in docs/testing.md.
fuzz-long: build-fuzz
	@./scripts/run-fuzz.sh 600

test: test-release test-debug fuzz
	@echo "make test: all suites passed"

# Benchmarks against the Node peers (bench/peers): `make bench` writes docs/benchmarks.md, its charts
# and raw results (about half an hour; wants a quiet machine); `make bench-quick` is a one-run smoke test
# (about a minute and a half) that writes build/bench-quick/benchmarks.md instead. Knobs: see bench/bench.py,
# e.g. `make bench RUNS=5` or `make bench SERVERS="ours-1t ws" SCENARIOS=fanout`.
bench: build
	@bash bench/peers/install.sh || echo "make bench: bench/peers/install.sh failed: the Node peers will be skipped" >&2
	@python3 bench/bench.py

bench-quick: build
	@bash bench/peers/install.sh || echo "make bench-quick: bench/peers/install.sh failed: the Node peers will be skipped" >&2
	@python3 bench/bench.py --quick

clean:
	rm -rf build
