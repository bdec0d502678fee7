# Boundary Realtime — top-level commands. Everything installs what it needs first.
#   make run    build (release) and start the server in dev mode
#   make test   unit, integration, sanitizer and short fuzz runs
#   make build  leaves the server at build/release/realtime-server

JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 15
ARGS ?=

.PHONY: all deps js build build-debug build-fuzz run test test-release test-debug fuzz fuzz-long clean bench bench-quick

all: build

deps:
	@./scripts/install-deps.sh

# The JavaScript client is built first: the server embeds it for the dev page.
js: deps
	@cd clients/js && npm run --silent build

build: js
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

build-debug: js
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug -j $(JOBS)

build-fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

run: build
	./build/release/realtime-server $(ARGS)

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
