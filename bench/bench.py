#!/usr/bin/env python3
"""Benchmark driver behind `make bench`: writes docs/benchmarks.md, its SVG charts and raw JSON.

Runs every scenario against every server, one after another under the same conditions:

  ours-1t   realtime-server --threads 1, pinned to CPU 0   (load generator on CPU 1)
  ours-2t   realtime-server --threads 2, pinned to CPUs 0-1 (load generator on CPU 1 too)
  ours-tls  ours-1t with --tls-cert/--tls-key, the load generator with --tls (fanout and connect only)
  ours-deflate  ours-1t with --compression on, the load generator with --compression (fanout and connect only)
  ours-history  ours-1t with --history bench=1000/300: the topic keeps its messages (fanout only)
  ours-pusher  ours-1t with --pusher-app bench:bench-key:bench-secret-0001, the load generator with
            --protocol pusher --pusher-key bench-key: subscribers on the Pusher public channel bench,
            the publisher a native-protocol client as for ours-1t (fanout and connect only)
  ws        node bench/peers/ws-server.mjs, pinned to CPU 0
  socketio  node bench/peers/socketio-server.mjs, pinned to CPU 0

Scenarios: fanout (full speed, CONNECTIONS subscribers), rate (fixed rate, RATE_CONNECTIONS
subscribers), connect (connects/s and RSS per idle connection), users (ours only: send-to-user
at a fixed rate, must be lossless), growth (fanout and connect at each of GROWTH_N), api (ours-1t
only: publishing through the HTTP API, pipelined, over 8 connections and in batches, against the
WebSocket `publish` path at the same API_WINDOW).

Each run gets a fresh server process. Before each run the driver waits until the machine is
quiet; a run during which other processes used more than MAX_OTHERS CPU seconds is repeated
(ATTEMPTS in all, the last one counts and is flagged). The load generator's JSON of every run is
kept under <out>/benchmarks/raw/, and the markdown is rendered from that directory, so
`python3 bench/bench.py --render` re-renders without measuring.

Environment knobs (defaults for a full run; QUICK=1 changes the ones marked *):
  QUICK=1             quick smoke run: writes build/bench-quick/benchmarks.md, never docs/
  RUNS (3*)           runs per server and scenario; tables show median (min-max)
  MESSAGES (1000*)    fanout messages, full speed        CONNECTIONS (10000)  fanout/connect/users N
  RATE (1000)         fixed-rate messages/s               RATE_MESSAGES (5000*)  RATE_CONNECTIONS (1000)
  WINDOW (256)        ours: `publish` commands in flight  SIZE (100)  message bytes
  USERS_RATE (5000)   USERS_DURATION (10*)  HOLD (2*)  idle seconds in the connect scenario
  GROWTH_N ("1000 5000 10000 19000"*)  GROWTH_MESSAGES (200*)
  API_MESSAGES (2000*)  API_WINDOW (32: requests in flight)  API_BATCH (100 messages per batch)
  Quick mode: RUNS=1 MESSAGES=50 RATE_MESSAGES=1000 USERS_DURATION=2 HOLD=1 GROWTH_N="1000 10000"
  GROWTH_MESSAGES=MESSAGES ATTEMPTS=1 QUIET_TIMEOUT=15 OUT=build/bench-quick (about 2 minutes).
  SERVERS ("ours-1t ours-2t ours-tls ours-deflate ours-history ours-pusher ws socketio")
  SCENARIOS ("fanout rate connect users growth api")
  MAX_OTHERS (0.5; per 10 s of a longer run)    ATTEMPTS (3*)  QUIET_TIMEOUT (300* s)  QUIET_CPU (0.10 CPU s per s)
  PORT (3850)         SERVER, LOADGEN (build/release binaries)  OUT (docs*)
  Setting SERVERS or SCENARIOS keeps the other raw results (a partial re-run); without them
  the raw directory is cleared first.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import ssl
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import charts  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-secret-0123456789abcdef0123456789a"  # 40 characters
API_KEY = "bench-api-key-0123456789"  # at least 16 bytes, as the server requires
OPT_BEGIN = "<!-- optimisations:begin -->"
OPT_END = "<!-- optimisations:end -->"
ALL_SERVERS = ["ours-1t", "ours-2t", "ours-tls", "ours-deflate", "ours-history", "ours-pusher", "ws", "socketio"]
TLS_SCENARIOS = ("fanout", "connect")  # ours-tls: what TLS changes (per-byte cost, handshakes, memory)
DEFLATE_SCENARIOS = ("fanout", "connect")  # ours-deflate: the compression pass per message, memory
HISTORY_SCENARIOS = ("fanout",)  # ours-history: what keeping every message costs the fan-out
PUSHER_SCENARIOS = ("fanout", "connect")  # ours-pusher: the Pusher framing per delivery, its handshake
PUSHER_APP = "bench:bench-key:bench-secret-0001"  # id:key:secret; the first app is the default app,
PUSHER_KEY = "bench-key"  # so its public channel `bench` is the native topic `bench`
ALL_SCENARIOS = ["fanout", "rate", "connect", "users", "growth", "api"]
# The api scenario's modes: how the publisher sends (loadgen_args) and what each row is called.
API_MODES = {
    "ws": "WebSocket `publish` (reference)",
    "api": "`POST /api/publish`, pipelined on 1 connection",
    "api8": "`POST /api/publish`, over 8 keep-alive connections",
    "api8w": "`POST /api/publish`, 8 keep-alive connections with API_WINDOW each",
    "batch": "`POST /api/batch`",
}
API_CONNECTIONS = 8
COLORS = {"ours-1t": charts.PALETTE[0], "ours-2t": charts.PALETTE[1], "ws": charts.PALETTE[2],
          "socketio": charts.PALETTE[3], "ours-tls": charts.PALETTE[4], "ours-deflate": charts.PALETTE[5],
          "ours-history": charts.PALETTE[6], "ours-pusher": charts.PALETTE[7]}
PERCENTILES = ["p50", "p90", "p99", "p99.9", "max"]
KEEP_WORK: list = []  # logs of runs whose server died or did not start


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def banner(msg: str) -> None:
    line = "!" * 78
    log(f"\n{line}\n!! {msg}\n{line}\n")


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass
class Config:
    quick: bool
    runs: int
    messages: int
    connections: int
    size: int
    window: int
    rate: float
    rate_messages: int
    rate_connections: int
    users_rate: float
    users_duration: float
    hold: float
    growth_n: list
    growth_messages: int
    api_messages: int
    api_window: int
    api_batch: int
    servers: list
    scenarios: list
    partial: bool
    max_others: float
    attempts: int
    quiet_timeout: float
    quiet_cpu: float
    quiet_sample: float
    port: int
    server_bin: str
    loadgen_bin: str
    out: str

    @property
    def md_path(self):
        return os.path.join(self.out, "benchmarks.md")

    @property
    def chart_dir(self):
        return os.path.join(self.out, "benchmarks")

    @property
    def raw_dir(self):
        return os.path.join(self.out, "benchmarks", "raw")

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.out)


SAVED_KNOBS: dict = {}  # --render: the knobs of the measuring run, from <raw>/knobs.json


def env(name: str, default, cast=str):
    v = os.environ.get(name)
    if v in (None, "") and name in SAVED_KNOBS:
        v = str(SAVED_KNOBS[name])
    return cast(v) if v not in (None, "") else default


def knobs(cfg: "Config") -> dict:
    """The knobs that name the cases, as environment variables: saved beside the raw results."""
    return {"RUNS": cfg.runs, "MESSAGES": cfg.messages, "CONNECTIONS": cfg.connections, "SIZE": cfg.size,
            "WINDOW": cfg.window, "RATE": cfg.rate, "RATE_MESSAGES": cfg.rate_messages,
            "RATE_CONNECTIONS": cfg.rate_connections, "USERS_RATE": cfg.users_rate,
            "USERS_DURATION": cfg.users_duration, "HOLD": cfg.hold, "GROWTH_N": " ".join(map(str, cfg.growth_n)),
            "GROWTH_MESSAGES": cfg.growth_messages, "API_MESSAGES": cfg.api_messages, "API_WINDOW": cfg.api_window,
            "API_BATCH": cfg.api_batch, "MAX_OTHERS": cfg.max_others, "ATTEMPTS": cfg.attempts}


def load_config() -> Config:
    quick = env("QUICK", "0") not in ("0", "", "no", "false")
    q = lambda full, fast: fast if quick else full  # noqa: E731
    servers = env("SERVERS", None)
    scenarios = env("SCENARIOS", None)
    cfg = Config(
        quick=quick,
        runs=env("RUNS", q(3, 1), int),
        messages=env("MESSAGES", q(1000, 50), int),
        connections=env("CONNECTIONS", 10000, int),
        size=env("SIZE", 100, int),
        window=env("WINDOW", 256, int),
        rate=env("RATE", 1000.0, float),
        rate_messages=env("RATE_MESSAGES", q(5000, 1000), int),
        rate_connections=env("RATE_CONNECTIONS", 1000, int),
        users_rate=env("USERS_RATE", 5000.0, float),
        users_duration=env("USERS_DURATION", q(10.0, 2.0), float),
        hold=env("HOLD", q(2.0, 1.0), float),
        growth_n=[int(x) for x in env("GROWTH_N", q("1000 5000 10000 19000", "1000 10000")).split()],
        growth_messages=0,
        api_messages=env("API_MESSAGES", q(2000, 200), int),
        api_window=env("API_WINDOW", 32, int),
        api_batch=env("API_BATCH", 100, int),
        servers=(servers or " ".join(ALL_SERVERS)).split(),
        scenarios=(scenarios or " ".join(ALL_SCENARIOS)).split(),
        partial=bool(servers or scenarios),
        max_others=env("MAX_OTHERS", 0.5, float),
        attempts=env("ATTEMPTS", q(3, 1), int),
        quiet_timeout=env("QUIET_TIMEOUT", q(300.0, 15.0), float),
        quiet_cpu=env("QUIET_CPU", 0.10, float),
        quiet_sample=q(1.0, 0.5),
        port=env("PORT", 3850, int),
        server_bin=env("SERVER", os.path.join(ROOT, "build/release/realtime-server")),
        loadgen_bin=env("LOADGEN", os.path.join(ROOT, "build/release/bench/realtime-loadgen")),
        out=env("OUT", os.path.join(ROOT, q("docs", "build/bench-quick"))),
    )
    # Quick mode: the growth fanout at CONNECTIONS is then the same run as the fanout scenario.
    cfg.growth_messages = env("GROWTH_MESSAGES", q(200, cfg.messages), int)
    for s in cfg.servers:
        if s not in ALL_SERVERS:
            sys.exit(f"bench.py: unknown server '{s}' (known: {' '.join(ALL_SERVERS)})")
    for s in cfg.scenarios:
        if s not in ALL_SCENARIOS:
            sys.exit(f"bench.py: unknown scenario '{s}' (known: {' '.join(ALL_SCENARIOS)})")
    return cfg


# ---------------------------------------------------------------------------------------------
# Cases: one load generator command line shape. A case's id encodes its parameters, so the
# growth scenario's point at N = CONNECTIONS reuses the connect scenario's runs when they match.


@dataclass(frozen=True)
class Case:
    kind: str  # fanout | rate | connect | users | api
    n: int
    messages: int = 0
    rate: float = 0
    hold: float = 0
    duration: float = 0
    mode: str = ""  # api: a key of API_MODES

    @property
    def id(self) -> str:
        if self.kind == "api":
            return f"api-{self.mode}-n{self.n}-m{self.messages}"
        if self.kind == "fanout":
            return f"fanout-n{self.n}-m{self.messages}"
        if self.kind == "rate":
            return f"rate-n{self.n}-r{self.rate:g}-m{self.messages}"
        if self.kind == "connect":
            return f"connect-n{self.n}-h{self.hold:g}"
        return f"users-n{self.n}-r{self.rate:g}-d{self.duration:g}"

    def deliveries(self) -> float:
        if self.kind in ("fanout", "rate", "api"):
            return self.n * self.messages
        if self.kind == "users":
            return self.rate * self.duration
        return 0


def scenario_cases(cfg: Config) -> dict:
    """scenario name -> list of cases (growth: fanout and connect cases per N)."""
    c = {
        "fanout": [Case("fanout", cfg.connections, messages=cfg.messages)],
        "rate": [Case("rate", cfg.rate_connections, messages=cfg.rate_messages, rate=cfg.rate)],
        "connect": [Case("connect", cfg.connections, hold=cfg.hold)],
        "users": [Case("users", cfg.connections, rate=cfg.users_rate, duration=cfg.users_duration)],
        "growth": [Case("fanout", n, messages=cfg.growth_messages) for n in cfg.growth_n]
        + [Case("connect", n, hold=cfg.hold) for n in cfg.growth_n],
        "api": [Case("api", cfg.connections, messages=cfg.api_messages, mode=m) for m in API_MODES],
    }
    return c


def is_ours(server: str) -> bool:
    return server.startswith("ours")


def applies(server: str, case: Case) -> bool:
    if case.kind == "api":
        return server == "ours-1t"
    return case.kind != "users" or is_ours(server)


def loadgen_args(cfg: Config, server: str, case: Case, port: int, pid: int) -> list:
    a = ["--port", str(port), "--connections", str(case.n), "--server-pid", str(pid), "--quiet"]
    if server == "ours-tls":
        a += ["--tls"]
    if server == "ours-deflate":
        a += ["--compression"]
    if is_ours(server):
        a += ["--secret", SECRET, "--api-key", API_KEY]
    else:
        a += ["--protocol", "plain-ws" if server == "ws" else "socketio"]
    if server == "ours-pusher":
        a += ["--protocol", "pusher", "--pusher-key", PUSHER_KEY]
    if case.kind in ("fanout", "rate"):
        if is_ours(server):
            a += ["--scenario", "fanout", "--via", "ws", "--window", str(cfg.window)]
        else:
            a += ["--scenario", "broadcast"]
        a += ["--messages", str(case.messages), "--size", str(cfg.size)]
        if case.kind == "rate":
            a += ["--rate", f"{case.rate:g}"]
    elif case.kind == "api":
        # The same number of requests in flight in every mode: API_WINDOW `publish` commands, or
        # API_WINDOW HTTP requests on one connection, or spread over 8; a batch request carries
        # API_BATCH messages and waits for its answer before the next.
        a += ["--scenario", "fanout", "--messages", str(case.messages), "--size", str(cfg.size)]
        if case.mode == "ws":
            a += ["--via", "ws", "--window", str(cfg.api_window)]
        elif case.mode == "api":
            a += ["--via", "api", "--window", str(cfg.api_window)]
        elif case.mode == "api8":
            a += ["--via", "api", "--api-connections", str(API_CONNECTIONS),
                  "--window", str(max(1, cfg.api_window // API_CONNECTIONS))]
        elif case.mode == "api8w":
            a += ["--via", "api", "--api-connections", str(API_CONNECTIONS), "--window", str(cfg.api_window)]
        else:
            a += ["--via", "api", "--batch", str(cfg.api_batch), "--window", "1"]
    elif case.kind == "connect":
        a += ["--scenario", "connect", "--hold", f"{case.hold:g}"]
    elif case.kind == "users":
        a += ["--scenario", "users", "--rate", f"{case.rate:g}", "--duration", f"{case.duration:g}",
              "--size", str(cfg.size)]
    # Deadline: generous (a slow peer at 20k deliveries/s); stalls end a run through --drain.
    a += ["--timeout", str(int(180 + case.deliveries() / 20000 + case.hold))]
    return a


# ---------------------------------------------------------------------------------------------
# Machine quietness (the logic of bench/run-first.sh)


def others_cpu(skip: set) -> float:
    """CPU seconds (own plus reaped children's) of every user process but `skip`: what other
    engineers' jobs took. Kernel threads (ksoftirqd doing this run's loopback work) are left out.
    The load generator, once reaped, lands in this process's cutime, and this process is skipped."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in skip:
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[6]) & 0x00200000:  # PF_KTHREAD
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / hz


def machine_busy() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:]]
                return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def wait_quiet(cfg: Config) -> float:
    """Waits until a second (half a second in quick mode) passes with less than QUIET_CPU CPU
    seconds per second used machine-wide."""
    start = time.monotonic()
    while True:
        a = machine_busy()
        time.sleep(cfg.quiet_sample)
        b = machine_busy()
        busy = (b - a) / cfg.quiet_sample
        if busy < cfg.quiet_cpu:
            return time.monotonic() - start
        if time.monotonic() - start > cfg.quiet_timeout:
            log(f"  warning: machine still busy after {cfg.quiet_timeout:.0f} s ({busy:.2f} CPU s/s), measuring anyway")
            return time.monotonic() - start


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class ServerSpec:
    name: str
    cpus: str  # taskset list for the server
    gen_cpus: str  # taskset list for the load generator
    available: bool = True
    why_not: str = ""


def server_specs(cfg: Config) -> dict:
    specs = {
        "ours-1t": ServerSpec("ours-1t", "0", "1"),
        "ours-2t": ServerSpec("ours-2t", "0,1", "1"),
        "ours-tls": ServerSpec("ours-tls", "0", "1"),
        "ours-deflate": ServerSpec("ours-deflate", "0", "1"),
        "ours-history": ServerSpec("ours-history", "0", "1"),
        "ours-pusher": ServerSpec("ours-pusher", "0", "1"),
        "ws": ServerSpec("ws", "0", "1"),
        "socketio": ServerSpec("socketio", "0", "1"),
    }
    node = shutil.which("node")
    help_text = ""
    try:
        help_text = subprocess.run([cfg.loadgen_bin, "--help"], capture_output=True, text=True, timeout=10).stdout
    except OSError as e:
        sys.exit(f"bench.py: cannot run the load generator {cfg.loadgen_bin}: {e} (make build)")
    for name, script, module, proto in (("ws", "ws-server.mjs", "ws", "plain-ws"),
                                        ("socketio", "socketio-server.mjs", "socket.io", "socketio")):
        s = specs[name]
        path = os.path.join(ROOT, "bench/peers", script)
        if not os.path.exists(path):
            s.available, s.why_not = False, f"bench/peers/{script} is missing"
        elif not os.path.exists(os.path.join(ROOT, "bench/peers/node_modules", module, "package.json")):
            s.available, s.why_not = False, f"bench/peers/node_modules/{module} is missing (bash bench/peers/install.sh)"
        elif not node:
            s.available, s.why_not = False, "node is not installed"
        elif proto not in help_text:
            s.available, s.why_not = False, f"the load generator has no --protocol {proto} (rebuild: make build)"
    if not shutil.which("openssl"):
        specs["ours-tls"].available, specs["ours-tls"].why_not = False, "the openssl command (its certificate) is missing"
    elif "--tls" not in help_text:
        specs["ours-tls"].available, specs["ours-tls"].why_not = False, "the load generator has no --tls (rebuild: make build)"
    if "--compression" not in help_text:
        specs["ours-deflate"].available = False
        specs["ours-deflate"].why_not = "the load generator has no --compression (rebuild: make build)"
    if "--pusher-key" not in help_text:
        specs["ours-pusher"].available = False
        specs["ours-pusher"].why_not = "the load generator has no --protocol pusher (rebuild: make build)"
    if not os.access(cfg.server_bin, os.X_OK):
        for n in ("ours-1t", "ours-2t", "ours-tls", "ours-deflate", "ours-history", "ours-pusher"):
            specs[n].available, specs[n].why_not = False, f"{cfg.server_bin} is missing (make build)"
    return specs


TLS_FILES: dict = {}


def make_certificate(work: str) -> None:
    """A throwaway self-signed P-256 certificate for ours-tls (the load generator does not check it)."""
    TLS_FILES["cert"], TLS_FILES["key"] = os.path.join(work, "tls-cert.pem"), os.path.join(work, "tls-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", TLS_FILES["key"], "-out", TLS_FILES["cert"], "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=30)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_port(base: int) -> int:
    for p in range(base, base + 100):
        if port_free(p):
            return p
    sys.exit(f"bench.py: no free port in {base}..{base + 99}")


class RunningServer:
    def __init__(self, cfg: Config, spec: ServerSpec, server_copy: str, port: int, log_path: str):
        self.spec, self.port, self.log_path = spec, port, log_path
        if is_ours(spec.name):
            threads = "2" if spec.name == "ours-2t" else "1"
            self.cmd = [server_copy, "--port", str(port), "--threads", threads, "--jwt-secret", SECRET,
                        "--api-key", API_KEY, "--max-outbound-bytes", "1048576", "--publish-patterns", "bench",
                        "--commands-per-second", "0", "--log-level", "warn"]
            if spec.name == "ours-tls":
                self.cmd += ["--tls-cert", TLS_FILES["cert"], "--tls-key", TLS_FILES["key"]]
            if spec.name == "ours-deflate":
                self.cmd += ["--compression", "on"]
            if spec.name == "ours-history":
                self.cmd += ["--history", "bench=1000/300"]
            if spec.name == "ours-pusher":
                self.cmd += ["--pusher-app", PUSHER_APP]
        else:
            script = "ws-server.mjs" if spec.name == "ws" else "socketio-server.mjs"
            self.cmd = ["node", os.path.join(ROOT, "bench/peers", script), "--port", str(port)]
        self.log = open(log_path, "wb")
        # taskset execs the server: the child's pid is the server's.
        self.proc = subprocess.Popen(["taskset", "-c", spec.cpus] + self.cmd, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        unverified = ssl.create_default_context()
        unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE  # our throwaway certificate
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=unverified))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if is_ours(self.spec.name):
                scheme = "https" if self.spec.name == "ours-tls" else "http"
                try:
                    with opener.open(f"{scheme}://127.0.0.1:{self.port}/health/realtime", timeout=1) as r:
                        if r.status == 200:
                            return True
                except OSError:
                    pass
            else:
                with open(self.log_path, "rb") as f:
                    if f"listening on {self.port}".encode() in f.read():
                        return True
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def log_tail(self, limit: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Running


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git(*args) -> str:
    try:
        return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True, timeout=20).stdout.strip()
    except OSError:
        return ""


def commit_desc() -> str:
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head + (" + uncommitted changes" if dirty else "")


def allowed_others(cfg: Config, wall: float) -> float:
    """CPU seconds other processes may take during a run of `wall` seconds: MAX_OTHERS for runs
    of up to 10 s (as bench/run-first.sh), and as much per further 10 s (5% of a core at 0.5)."""
    return cfg.max_others * max(1.0, wall / 10.0)


def run_once(cfg: Config, spec: ServerSpec, case: Case, server_copy: str, work: str, tag: str) -> dict:
    """One run: up to ATTEMPTS attempts, repeated while other processes disturb it."""
    others_by_attempt = []
    rec: dict = {}
    for attempt in range(1, cfg.attempts + 1):
        waited = wait_quiet(cfg)
        port = pick_port(cfg.port)
        srv = RunningServer(cfg, spec, server_copy, port, os.path.join(work, f"{tag}.a{attempt}.server.log"))
        if not srv.wait_ready():
            srv.stop()
            rec = {"error": "server did not come up", "server_log": srv.log_tail(), "server_cmd": shlex.join(srv.cmd)}
            log(f"  {tag}: SERVER DID NOT COME UP; log {srv.log_path}")
            KEEP_WORK.append(srv.log_path)
            others_by_attempt.append(None)
            continue
        args = loadgen_args(cfg, spec.name, case, port, srv.pid)
        cmd = ["taskset", "-c", spec.gen_cpus, cfg.loadgen_bin] + args
        skip = {os.getpid(), srv.pid}
        try:
            o0 = others_cpu(skip)
            t0 = time.monotonic()
            # subprocess.run kills the load generator if this process is interrupted.
            p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            wall = time.monotonic() - t0
            o1 = others_cpu(skip)
            alive = srv.alive()
            server_log = srv.log_tail()
        finally:
            srv.stop()
        others = round(o1 - o0, 2)
        others_by_attempt.append(others)
        result = None
        try:
            result = json.loads(p.stdout)
        except ValueError:
            pass
        rec = {
            "attempt": attempt,
            "exit_status": p.returncode,
            "server_alive_after": alive,
            "server_exit_status": None if alive else srv.proc.returncode,
            "others_cpu_seconds": others,
            "waited_for_quiet_seconds": round(waited, 1),
            "wall_seconds": round(wall, 2),
            "server_cmd": "taskset -c " + spec.cpus + " " + shlex.join(
                [os.path.basename(srv.cmd[0]) if is_ours(spec.name) else srv.cmd[0]]
                + [os.path.relpath(x, ROOT) if x.startswith(ROOT) else x for x in srv.cmd[1:]]),
            "loadgen_cmd": "taskset -c " + spec.gen_cpus + " realtime-loadgen " + shlex.join(args),
            "result": result,
            "stderr": p.stderr[-4000:],
        }
        if server_log.strip():
            rec["server_log"] = server_log
        if not alive:
            banner(f"{tag}: SERVER DIED during the run (log {srv.log_path})")
            KEEP_WORK.append(srv.log_path)
        if result is None:
            log(f"  {tag}: the load generator printed no JSON (exit {p.returncode}): {p.stderr.strip()[-500:]}")
        time.sleep(0.5)  # let the kernel finish closing the sockets
        limit = allowed_others(cfg, wall)
        rec["others_cpu_allowed"] = round(limit, 2)
        killed = p.returncode in (-signal.SIGTERM, -signal.SIGKILL, -signal.SIGINT) or (
            not alive and srv.proc.returncode in (-signal.SIGTERM, -signal.SIGKILL, -signal.SIGINT))
        if killed and attempt < cfg.attempts:
            # Killed from outside (someone's cleanup next door): not a finding, repeat. A crash
            # (SIGSEGV, SIGABRT) is a finding and is kept.
            log(f"  {tag}: the load generator or the server was killed from outside, repeating")
            continue
        if others <= limit:
            break
        if attempt < cfg.attempts:
            log(f"  {tag}: other processes used {others:.2f} CPU s (> {limit:.2f} allowed), repeating")
    rec["others_cpu_by_attempt"] = others_by_attempt
    rec["disturbed"] = bool(others_by_attempt and (others_by_attempt[-1] is None or
                                                   others_by_attempt[-1] > rec.get("others_cpu_allowed", cfg.max_others)))
    return rec


def one_line(case: Case, rec: dict) -> str:
    r = rec.get("result") or {}
    if not r:
        return rec.get("error", "no result")
    c = r.get("connect", {})
    parts = [f"{c.get('opened', 0)}/{case.n} open, {c.get('per_second', 0):,.0f} conn/s"]
    if case.kind == "connect":
        b = r.get("server", {}).get("rss_per_connection_after_hold_bytes")
        if b is not None:
            parts.append(f"{b:,.0f} B/conn")
    d = r.get("delivery")
    if d:
        lat = d["latency_us"]
        parts.append(f"{d['deliveries_per_second']:,.0f} deliveries/s, p50 {charts.microseconds(lat['p50'])}, "
                     f"p99 {charts.microseconds(lat['p99'])}, lost {d['lost']}")
    parts.append(f"others {rec.get('others_cpu_seconds')} CPU s")
    return "; ".join(parts)


def measure(cfg: Config) -> None:
    specs = server_specs(cfg)
    servers = []
    for name in cfg.servers:
        if specs[name].available:
            servers.append(name)
        else:
            banner(f"SKIPPING {name}: {specs[name].why_not}")
    cases_by_scenario = scenario_cases(cfg)
    plan = []  # (server, case), each unique pair once, in scenario order
    seen = set()
    for sc in cfg.scenarios:
        for server in servers:
            if server == "ours-tls" and sc not in TLS_SCENARIOS:
                continue
            if server == "ours-deflate" and sc not in DEFLATE_SCENARIOS:
                continue
            if server == "ours-history" and sc not in HISTORY_SCENARIOS:
                continue
            if server == "ours-pusher" and sc not in PUSHER_SCENARIOS:
                continue
            for case in cases_by_scenario[sc]:
                if applies(server, case) and (server, case.id) not in seen:
                    seen.add((server, case.id))
                    plan.append((server, case))
    if not plan:
        sys.exit("bench.py: nothing to run")

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    biggest = max(c.n for _, c in plan)
    if biggest + 16 > hard:
        banner(f"{biggest} connections need more than the open-file limit {hard} (ulimit -Hn): those runs will fail")

    os.makedirs(cfg.raw_dir, exist_ok=True)
    if not cfg.partial:
        for f in glob.glob(os.path.join(cfg.raw_dir, "*.json")):
            os.remove(f)
    with open(os.path.join(cfg.raw_dir, "knobs.json"), "w") as f:
        json.dump(knobs(cfg), f, indent=1)
        f.write("\n")
    work = tempfile.mkdtemp(prefix="realtime-bench.")
    if "ours-tls" in servers:
        make_certificate(work)
    # Others rebuild build/release while this runs: measure one private copy of each binary.
    server_copy = os.path.join(work, "realtime-server")
    loadgen_copy = os.path.join(work, "realtime-loadgen")
    meta = {"commit": commit_desc(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "quick": cfg.quick, "cpu": cpu_model(), "kernel": platform.release()}
    if os.path.exists(cfg.server_bin):
        shutil.copy2(cfg.server_bin, server_copy)
        meta["server_sha256"] = sha256(server_copy)
        meta["server_mtime"] = datetime.datetime.fromtimestamp(os.path.getmtime(cfg.server_bin)).isoformat(timespec="seconds")
    shutil.copy2(cfg.loadgen_bin, loadgen_copy)
    meta["loadgen_sha256"] = sha256(loadgen_copy)
    cfg.loadgen_bin = loadgen_copy
    log(f"bench: {len(plan)} server/case pairs x {cfg.runs} runs; work dir {work}; results -> {cfg.md_path}")

    t_start = time.monotonic()
    total = len(plan) * cfg.runs
    done = 0
    try:
        for server, case in plan:
            spec = specs[server]
            runs = []
            for run in range(1, cfg.runs + 1):
                done += 1
                tag = f"{server}--{case.id}--{run}"
                rec = run_once(cfg, spec, case, server_copy, work, tag)
                rec["run"] = run
                runs.append(rec)
                el = time.monotonic() - t_start
                log(f"[{done}/{total} {el / 60:.1f} min] {server} {case.id} run {run}: {one_line(case, rec)}")
                if case.kind == "users" and not lossless(rec):
                    banner(f"{server} users run {run} was NOT LOSSLESS: {integrity_text(rec)}")
            doc = {"server": server, "case": case.id, "kind": case.kind, "n": case.n,
                   "params": {"messages": case.messages, "rate": case.rate, "hold": case.hold,
                              "duration": case.duration, "size": cfg.size,
                              "window": cfg.window if is_ours(server) and case.kind in ("fanout", "rate") else
                              cfg.api_window if case.kind == "api" else None,
                              "mode": case.mode or None, "batch": cfg.api_batch if case.mode == "batch" else None},
                   "cpus": {"server": spec.cpus, "loadgen": spec.gen_cpus}, "meta": meta, "runs": runs}
            with open(os.path.join(cfg.raw_dir, f"{server}--{case.id}.json"), "w") as f:
                # One run per line: small, and diffs stay readable.
                f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
                                          for k, v in doc.items() if k != "runs"))
                f.write(',\n"runs": [\n' + ",\n".join(json.dumps(r, separators=(",", ":")) for r in runs) + "\n]\n}\n")
    finally:
        if KEEP_WORK:
            log(f"bench: server logs of failed runs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log(f"bench: measured in {(time.monotonic() - t_start) / 60:.1f} min")


# ---------------------------------------------------------------------------------------------
# Summaries


def lossless(rec: dict) -> bool:
    d = (rec.get("result") or {}).get("delivery")
    if not d:
        return False
    return (d["lost"] == 0 and d["reordered"] == 0 and d["duplicates"] == 0 and d["misrouted"] == 0
            and d["unique"] == d["expected"] and d["expected"] > 0)


def integrity_text(rec: dict) -> str:
    d = (rec.get("result") or {}).get("delivery") or {}
    return (f"expected {d.get('expected')}, unique {d.get('unique')}, lost {d.get('lost')}, reordered "
            f"{d.get('reordered')}, duplicates {d.get('duplicates')}, misrouted {d.get('misrouted')}")


def get(rec: dict, path: str):
    v = rec.get("result")
    for k in path.split("/"):
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


@dataclass
class Stat:
    median: Optional[float]
    lo: Optional[float]
    hi: Optional[float]
    n: int


def stat(runs: list, path: str, positive: bool = False) -> Stat:
    xs = [get(r, path) for r in runs]
    xs = [x for x in xs if isinstance(x, (int, float)) and (not positive or x > 0)]
    if not xs:
        return Stat(None, None, None, 0)
    return Stat(statistics.median(xs), min(xs), max(xs), len(xs))


def problems(rec: dict, kind: str, n: int) -> list:
    """What is wrong with one run, in words (empty when it is clean)."""
    out = []
    if rec.get("error"):
        return [rec["error"]]
    r = rec.get("result")
    if not r:
        return [f"no result (load generator exit {rec.get('exit_status')})"]
    if rec.get("exit_status"):
        out.append(f"load generator exit {rec['exit_status']}")
    if not rec.get("server_alive_after", True):
        out.append(f"server died (exit status {rec.get('server_exit_status')})")
    c = r.get("connect", {})
    if c.get("opened", 0) != n:
        out.append(f"{c.get('opened', 0)} of {n} connected")
    d = r.get("delivery")
    if kind != "connect":
        if not d:
            out.append("no delivery phase")
        else:
            for k in ("lost", "reordered", "duplicates", "misrouted", "send_errors", "command_errors"):
                if d.get(k):
                    out.append(f"{k} {d[k]:,}")
            if d.get("stalled"):
                out.append("stalled")
            if d.get("deadline_hit"):
                out.append("deadline hit")
            if d.get("publisher_failed"):
                out.append(f"publisher failed: {d['publisher_failed']}")
    closed = sum((r.get("closed_by_server") or {}).values())
    if closed:
        out.append(f"{closed} connections closed by the server")
    return out


def load_results(cfg: Config) -> dict:
    """(server, case id) -> raw document."""
    out = {}
    for f in sorted(glob.glob(os.path.join(cfg.raw_dir, "*--*.json"))):
        try:
            with open(f) as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as e:
            log(f"warning: cannot read {f}: {e}")
            continue
        out[(doc["server"], doc["case"])] = doc
    return out


# ---------------------------------------------------------------------------------------------
# Markdown


def fmt_num(v, digits=0) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def fmt_stat(s: Stat, fmt=fmt_num, runs=True) -> str:
    if s.median is None:
        return "–"
    if s.n <= 1 or not runs:
        return fmt(s.median)
    return f"{fmt(s.median)} ({fmt(s.lo)}–{fmt(s.hi)})"


def fmt_lat(s: Stat) -> str:
    """A latency in µs with its run range, in the median's unit: '149 (142–155) ms'."""
    if s.median is None:
        return "–"
    m = s.median
    unit, div = ("s", 1e6) if m >= 1e6 else ("ms", 1e3) if m >= 1e3 else ("µs", 1)

    def f(v):
        x = v / div
        return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}" if x >= 10 else f"{x:,.2f}"
    if s.n <= 1:
        return f"{f(m)} {unit}"
    return f"{f(m)} ({f(s.lo)}–{f(s.hi)}) {unit}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def runs_text(cfg: Config) -> str:
    return "one run" if cfg.runs == 1 else f"median of {cfg.runs} runs, whiskers min–max"


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def vs_ws(server: str, mine: Optional[float], ws: Optional[float]) -> str:
    """The '÷ ws' cell of a table row."""
    return "(ref)" if server == "ws" else fmt_ratio(ratio(mine, ws))


def fmt_ratio(x: Optional[float]) -> str:
    if x is None:
        return "–"
    if 0 < x < 0.5:  # 0.055 -> 1/18
        inv = 1 / x
        return f"1/{inv:,.0f}" if inv >= 10 else f"1/{inv:.1f}"
    if x >= 10:
        return f"{x:,.0f}×"
    if x >= 1:
        return f"{x:.1f}×"
    return f"{x:.2g}×"


class Doc:
    def __init__(self, cfg: Config, results: dict, servers: list):
        self.cfg, self.results, self.servers = cfg, results, servers
        self.lines: list[str] = []
        self.notes: list[str] = []  # footnotes of the current table

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def runs(self, server: str, case: Case) -> list:
        doc = self.results.get((server, case.id))
        return doc["runs"] if doc else []

    def flags(self, server: str, case: Case) -> str:
        """Marks for a table row: ⚠ problems, † disturbed runs; the details go to the notes."""
        runs = self.runs(server, case)
        marks = ""
        bad = []
        for r in runs:
            p = problems(r, case.kind, case.n)
            if p:
                bad.append(f"run {r.get('run')}: " + ", ".join(p))
        if bad:
            marks += " ⚠"
            self.notes.append(f"⚠ {server}, {case.n:,} connections — " + "; ".join(bad))
        dist = [r for r in runs if r.get("disturbed")]
        if dist:
            marks += " †"
            self.notes.append(f"† {server}, {case.n:,} connections: " + "; ".join(
                f"run {r.get('run')} still disturbed on its last attempt (other processes used "
                f"{r.get('others_cpu_seconds')} CPU s)" for r in dist))
        return marks

    def flush_notes(self) -> None:
        if self.notes:
            self.add("")
            for n in dict.fromkeys(self.notes):  # each once, in order
                self.add(f"- {n}")
            self.notes = []
        self.add("")


def read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def cpu_model() -> str:
    cpu = re.search(r"^model name\s*:\s*(.+)$", read_text("/proc/cpuinfo"), re.M)
    return cpu.group(1).strip() if cpu else "?"


def machine_info(cfg: Config, results: dict) -> list:
    """The machine the figures were measured on: rows for the machine this renders on, and, per
    build measured, the CPU and kernel recorded with its results when they differ from those."""
    read = read_text
    mem = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]+)', read("/etc/os-release"), re.M)
    node = ""
    if shutil.which("node"):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()

    def pkg(name):
        try:
            with open(os.path.join(ROOT, "bench/peers/node_modules", name, "package.json")) as f:
                return json.load(f).get("version", "?")
        except (OSError, ValueError):
            return "not installed"
    metas = {}
    for doc in results.values():
        m = doc.get("meta", {})
        key = (m.get("commit"), m.get("server_sha256"), m.get("cpu"), m.get("kernel"))
        metas.setdefault(key, []).append(m.get("date", ""))
    # The CPU and kernel rows name the machine most results were measured on (older results
    # record none: this machine's then); a build measured elsewhere says where.
    here = (cpu_model(), platform.release())
    counts: dict = {}
    for (_, _, c, k), dates in metas.items():
        where = (c or here[0], k or here[1])
        counts[where] = counts.get(where, 0) + len(dates)
    main_cpu, main_kernel = max(counts, key=counts.get) if counts else here
    builds = []
    for (commit, sha, c, k), dates in sorted(metas.items(), key=lambda kv: min(kv[1])):
        where = ""
        if (c or main_cpu, k or main_kernel) != (main_cpu, main_kernel):
            where = f" on another machine ({c or main_cpu}, Linux {k or main_kernel})"
        builds.append(f"commit {commit or '?'}, server binary sha256 `{(sha or '?')[:12]}…`, "
                      f"measured {min(dates)[:16].replace('T', ' ')}{where}")
    rows = [
        ("CPU", f"{main_cpu}, {os.cpu_count()} cores (shared with other jobs)"),
        ("Memory", f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "?"),
        ("OS / kernel", f"{os_name.group(1) if os_name else platform.system()}, Linux {main_kernel}"),
        ("Open-file limit", f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,} (ulimit -Hn)"),
        ("Node.js", f"{node or 'not installed'}; ws {pkg('ws')}, socket.io {pkg('socket.io')} "
                    f"(engine.io {pkg('engine.io')})"),
        ("Boundary Realtime", "; ".join(builds) if builds else f"commit {commit_desc()}"),
    ]
    return ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def read_optimisations(cfg: Config) -> Optional[str]:
    for path in (cfg.md_path, os.path.join(ROOT, "docs/benchmarks.md")):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        i, j = text.find(OPT_BEGIN), text.find(OPT_END)
        if i >= 0 and j > i:
            return text[i:j + len(OPT_END)]
    return None


def render(cfg: Config) -> str:
    results = load_results(cfg)
    os.makedirs(cfg.chart_dir, exist_ok=True)
    present = {s for s, _ in results}
    servers = [s for s in ALL_SERVERS if s in present]
    cases = scenario_cases(cfg)
    d = Doc(cfg, results, servers)
    chart = lambda name: os.path.join(cfg.chart_dir, name)  # noqa: E731
    img = lambda name, alt: d.add(f"![{alt}]({cfg.rel(chart(name))})", "")  # noqa: E731

    d.add("# Benchmarks", "")
    d.add("<!-- Generated by bench/bench.py (make bench). Edit only between the optimisations markers. -->", "")
    if cfg.quick:
        d.add("> **Quick run** (`make bench-quick`): one run each, few messages — a smoke test of the "
              "pipeline, not results to quote. With 50 messages our fan-out is mostly start-up (our "
              "publisher's batching needs a few hundred messages in flight), so the targets table here "
              "is not a verdict. `make bench` writes the full results to docs/benchmarks.md.", "")
    d.add("Boundary Realtime (`realtime-server`) against two Node.js servers doing the same job: a "
          "[`ws`](https://github.com/websockets/ws) broadcast relay and a Socket.IO server "
          "(`bench/peers/`). The load generator is `realtime-loadgen` (`bench/loadgen/`): one thread, "
          "raw epoll, every message timestamped by the sender and checked by every receiver for loss, "
          "order and duplicates.", "")

    # --- reproduce
    d.add("## How to reproduce", "")
    d.add("```sh",
          "make bench         # release build, npm ci in bench/peers, every scenario x server, RUNS=3: writes this file",
          "make bench-quick   # smoke run (1 run, few messages, N = 1k/10k, ~1.5 min): writes build/bench-quick/benchmarks.md",
          "python3 bench/bench.py --render   # re-render this file and the charts from docs/benchmarks/raw/",
          "```", "")
    d.add("Knobs (environment or `make bench VAR=value`): `RUNS` (3), `MESSAGES` (1000), `CONNECTIONS` (10000), "
          "`RATE` (1000 msg/s), `RATE_MESSAGES` (5000), `RATE_CONNECTIONS` (1000), `USERS_RATE` (5000), "
          "`USERS_DURATION` (10 s), `HOLD` (2 s), `GROWTH_N` (\"1000 5000 10000 19000\"), `GROWTH_MESSAGES` (200), "
          "`SIZE` (100 B), `WINDOW` (256), `API_MESSAGES` (2000), `API_WINDOW` (32), `API_BATCH` (100), "
          "`SERVERS` (\"ours-1t ours-2t ours-tls ours-deflate ours-history ours-pusher ws socketio\"), "
          "`SCENARIOS` (\"fanout rate connect users growth api\"), `MAX_OTHERS` (0.5 CPU s), `ATTEMPTS` (3), "
          "`QUIET_TIMEOUT` (300 s), `PORT` (3850), `OUT` (docs). With `SERVERS` or `SCENARIOS` set, the other "
          "servers' and scenarios' raw results are kept and the file is re-rendered from all of them.", "")
    d.add(f"Raw results: [`{cfg.rel(cfg.raw_dir)}/`]({cfg.rel(cfg.raw_dir)}/), one JSON file per server and "
          "case with each run's load-generator report, commands, stderr and the CPU time other processes took.", "")

    # --- machine and conditions
    d.add("## Machine", "")
    d.add(*machine_info(cfg, results))
    d.add("")
    d.add("## Conditions", "")
    d.add(f"- Servers: **ours-1t** = `realtime-server --threads 1 --max-outbound-bytes 1048576 --publish-patterns bench "
          "--commands-per-second 0 --log-level warn` (HS256 JWT secret, API key), pinned to CPU 0; **ours-2t** = the same "
          "with `--threads 2`, pinned to CPUs 0–1; **ours-tls** = ours-1t with `--tls-cert`/`--tls-key` (a self-signed "
          "P-256 certificate; TLS 1.3), its clients full TLS handshakes without resumption (`realtime-loadgen --tls`), "
          "fanout and connect only; **ours-deflate** = ours-1t with `--compression on`, every client negotiating "
          "permessage-deflate (`realtime-loadgen --compression`, which inflates each distinct payload once), fanout and "
          "connect only; **ours-history** = ours-1t with `--history bench=1000/300` (the topic keeps its last 1,000 "
          "messages; every delivery carries its offset), fanout only; **ours-pusher** = ours-1t with `--pusher-app "
          f"{PUSHER_APP}`, its clients speaking the Pusher protocol 7 at `/app/{PUSHER_KEY}` without a token "
          "(`realtime-loadgen --protocol pusher`; the subscribers join the public channel `bench`, which is the topic "
          "`bench`), fanout and connect only; a Pusher client cannot publish to a public channel, so its publisher is "
          "the same native-protocol client as ours-1t's (`publish` commands, the same window). **ws** = `node bench/peers/ws-server.mjs` (every text message from "
          "a client goes to every other client) and **socketio** = `node bench/peers/socketio-server.mjs` (a `publish` "
          "event is `socket.broadcast.emit(\"message\", …)`, WebSocket transport only), both pinned to CPU 0.",
          "- The load generator is pinned to CPU 1. The machine has only 2 cores, so **ours-2t shares CPU 1 with the "
          "load generator**: its figures show what a second thread gains on a machine that is already loaded, not "
          "two free cores.",
          f"- Messages are {cfg.size}-byte JSON objects. Our publisher is a WebSocket client sending `publish` commands "
          f"with up to {cfg.window} awaiting their reply (`--via ws --window {cfg.window}`); the subscribers subscribed to "
          "topic `bench`. The peers' publisher is one more client whose messages the server relays to all others; "
          "having no replies to wait for, it sends as fast as its socket takes them (up to 64 at a time).",
          "- Every run starts a fresh server process. Before each run the driver waits until the machine is idle "
          f"(under {cfg.quiet_cpu} CPU s per s); a run during which other processes took more than {cfg.max_others} CPU s "
          f"({cfg.max_others} CPU s per 10 s for runs longer than 10 s) "
          f"is repeated (at most {plural(cfg.attempts, 'attempt')}; the last one counts, and is marked † if still "
          "disturbed).",
          f"- Each figure is the median over the runs ({cfg.runs} per server and scenario) with (min–max) in brackets; "
          "each figure's median is taken on its own. Ratios compare medians: value ÷ ws's value.",
          "- Latency: from the publisher's send timestamp to each subscriber's receipt, both in the load generator; "
          "lost = expected − unique deliveries.",
          "")

    glance(d, cases)

    # --- targets
    tgt = targets(d, cases)
    d.add("## Targets", "")
    d.add("| Target | Required | ours-1t | ours-2t |", "|---|---|---|---|")
    for row in tgt:
        d.add("| " + " | ".join(row) + " |")
    d.add("")

    fanout_case = cases["fanout"][0]
    rate_case = cases["rate"][0]
    connect_case = cases["connect"][0]
    users_case = cases["users"][0]
    delivery_section(d, fanout_case, "Fanout at full speed",
                     f"{fanout_case.n:,} subscribers, {fanout_case.messages:,} messages of {cfg.size} B published as "
                     f"fast as the server takes them ({fanout_case.n * fanout_case.messages:,} deliveries per run). "
                     f"Our publisher keeps at most {cfg.window} messages awaiting the server's reply, so latency "
                     "measures a pass over the subscribers. The peers send no reply, so their publisher is not "
                     "flow-controlled: all messages queue in the peer at once and their latency grows with the "
                     "number of messages. Compare latency at a fixed rate (next section).",
                     "fanout", img, chart)
    delivery_section(d, rate_case, "Fanout at a fixed rate",
                     f"{rate_case.n:,} subscribers, {rate_case.messages:,} messages at {rate_case.rate:,.0f} msg/s "
                     f"({rate_case.n * rate_case.rate:,.0f} deliveries/s offered). The figure that matters is p99 latency: "
                     "a server that keeps up delivers each message within a fraction of the 1 ms between messages; one "
                     "that does not queues, and its latency grows for the whole run.", "rate", img, chart)
    connect_section(d, connect_case, img, chart)
    users_section(d, users_case, img, chart)
    growth_section(d, cases["growth"], img, chart)
    api_section(d, cases["api"])

    d.add("## Optimisations", "")
    kept = read_optimisations(cfg)
    if kept:
        body = kept[len(OPT_BEGIN):-len(OPT_END)].strip()
        if body.startswith("## Optimisations"):  # the heading was written inside the markers
            d.lines.pop()
            d.lines.pop()
        d.add(kept, "")
    else:
        d.add(OPT_BEGIN, "_(Written by hand; bench/bench.py keeps what is between these markers.)_", OPT_END, "")
    return "\n".join(d.lines).rstrip() + "\n"


def server_row_stats(d: Doc, server: str, case: Case):
    runs = d.runs(server, case)
    return runs, {p: stat(runs, f"delivery/latency_us/{p}") for p in PERCENTILES}


def delivery_section(d: Doc, case: Case, title: str, intro: str, slug: str, img, chart) -> None:
    servers = [s for s in d.servers if d.runs(s, case)]
    d.add(f"## {title}", "", intro, "")
    if not servers:
        d.add("_Not measured._", "")
        return
    ws_tput = stat(d.runs("ws", case), "delivery/deliveries_per_second").median
    ws_p99 = stat(d.runs("ws", case), "delivery/latency_us/p99").median
    d.add("| Server | deliveries/s | ÷ ws | p50 | p90 | p99 | p99 ÷ ws | p99.9 | max | lost / reordered / duplicates (all runs) |",
          "|---|---|---|---|---|---|---|---|---|---|")
    for s in servers:
        runs, lat = server_row_stats(d, s, case)
        t = stat(runs, "delivery/deliveries_per_second")
        integ = " / ".join(f"{sum(get(r, 'delivery/' + k) or 0 for r in runs):,}" for k in ("lost", "reordered", "duplicates"))
        d.add(f"| {s}{d.flags(s, case)} | {fmt_stat(t)} | {vs_ws(s, t.median, ws_tput)} | {fmt_lat(lat['p50'])} | "
              f"{fmt_lat(lat['p90'])} | {fmt_lat(lat['p99'])} | {vs_ws(s, lat['p99'].median, ws_p99)} | "
              f"{fmt_lat(lat['p99.9'])} | {fmt_lat(lat['max'])} | {integ} |")
    if case.kind == "rate":
        offered = case.n * case.rate
        for s in servers:
            t = stat(d.runs(s, case), "delivery/deliveries_per_second").median
            if t is not None and t < 0.95 * offered:
                d.notes.append(f"{s} did not keep up: {t:,.0f} of the {offered:,.0f} deliveries/s offered, so its "
                               "latency is time spent queueing, and grows with the length of the run "
                               f"({case.messages:,} messages).")
    d.flush_notes()
    cpu = []
    for s in servers:
        runs = d.runs(s, case)
        sc, lc = stat(runs, "delivery/server_cpu_seconds"), stat(runs, "delivery/loadgen_cpu_seconds")
        sec = stat(runs, "delivery/seconds")
        if sc.median is not None:
            cpu.append(f"{s} {sc.median:.1f} s server CPU / {lc.median:.1f} s load generator CPU in {sec.median:.1f} s")
    if cpu:
        d.add("CPU time during delivery (medians): " + "; ".join(cpu) + ".", "")
    names = servers
    stats = [stat(d.runs(s, case), "delivery/deliveries_per_second") for s in names]
    sub = f"{case.n:,} subscribers, {d.cfg.size} B messages; {runs_text(d.cfg)}"
    if slug == "fanout":
        charts.bar_chart(chart(f"{slug}-throughput.svg"), f"Fanout to {case.n:,} subscribers at full speed",
                         names, [COLORS[s] for s in names], [x.median for x in stats], [x.lo for x in stats],
                         [x.hi for x in stats], ylabel="deliveries/s", subtitle=sub)
        img(f"{slug}-throughput.svg", "deliveries per second by server")
    series = []
    for s in names:
        _, lat = server_row_stats(d, s, case)
        series.append(charts.Series(s, COLORS[s], [lat[p].median for p in PERCENTILES],
                                    [lat[p].lo for p in PERCENTILES], [lat[p].hi for p in PERCENTILES]))
    title2 = (f"Latency, fanout to {case.n:,} at full speed" if slug == "fanout" else
              f"Latency, {case.n:,} subscribers at {case.rate:,.0f} msg/s")
    charts.grouped_bar_chart(chart(f"{slug}-latency.svg"), title2, PERCENTILES, series, ylabel="latency (log scale)",
                             fmt=charts.microseconds, log=True, subtitle=sub)
    img(f"{slug}-latency.svg", "latency percentiles by server")


def api_reference(d: Doc, cases: list) -> Optional[float]:
    ref = next((c for c in cases if c.mode == "ws"), None)
    return stat(d.runs("ours-1t", ref), "delivery/deliveries_per_second").median if ref else None


def api_section(d: Doc, cases: list) -> None:
    cfg = d.cfg
    n, m = cases[0].n, cases[0].messages
    d.add("## The HTTP API path (ours-1t)", "",
          f"{n:,} subscribers, {m:,} messages of {cfg.size} B published through the server API as fast as it "
          f"answers, against the WebSocket `publish` path with the same number in flight ({cfg.api_window}). "
          f"Pipelined: {cfg.api_window} `POST /api/publish` requests in flight on one keep-alive connection; "
          f"8 connections: {max(1, cfg.api_window // API_CONNECTIONS)} in flight on each of {API_CONNECTIONS} keep-alive "
          f"connections (and, in one more row, {cfg.api_window} on each: {cfg.api_window * API_CONNECTIONS} in all); "
          f"batch: {cfg.api_batch} publishes per `POST /api/batch` request, one request at a time. "
          "Requests already read when the server dispatches are all dispatched before its flush pass, so their "
          "messages leave in one write per subscriber; a pass with HTTP answers first lets the event loop look once "
          "more for requests that arrived on other connections.", "")
    if not any(d.runs("ours-1t", c) for c in cases):
        d.add("_Not measured._", "")
        return
    metas = [d.results[("ours-1t", c.id)].get("meta", {}) for c in cases if ("ours-1t", c.id) in d.results]
    if metas:
        m = metas[0]
        d.add(f"Measured {m.get('date', '?')[:16].replace('T', ' ')} (commit {m.get('commit', '?')}) on "
              f"{m.get('cpu', '?')}, Linux {m.get('kernel', '?')}. A † marks a row with runs that other jobs "
              "disturbed on every attempt: its range is wide and its figures are a floor.", "")
    ref = api_reference(d, cases)
    d.add("| Publisher | deliveries/s | ÷ WebSocket `publish` | p50 | p99 | lost / reordered / duplicates (all runs) |",
          "|---|---|---|---|---|---|")
    for c in cases:
        runs = d.runs("ours-1t", c)
        if not runs:
            continue
        t = stat(runs, "delivery/deliveries_per_second")
        p50, p99 = stat(runs, "delivery/latency_us/p50"), stat(runs, "delivery/latency_us/p99")
        r = ratio(t.median, ref)
        cell = "(ref)" if c.mode == "ws" else ("" if r is None else f"{r:.0%}")
        integ = " / ".join(f"{sum(get(x, 'delivery/' + k) or 0 for x in runs):,}" for k in ("lost", "reordered", "duplicates"))
        d.add(f"| {API_MODES[c.mode]}{d.flags('ours-1t', c)} | {fmt_stat(t)} | {cell} | {fmt_lat(p50)} | "
              f"{fmt_lat(p99)} | {integ} |")
    d.flush_notes()


def connect_section(d: Doc, case: Case, img, chart) -> None:
    servers = [s for s in d.servers if d.runs(s, case)]
    anonymous = ", ours-pusher's none" if "ours-pusher" in servers else ""
    d.add("## Connect", "", f"{case.n:,} WebSocket connections opened with 500 handshakes in flight (our clients each "
          f"present a JWT{anonymous}), then held idle {case.hold:g} s. Server RSS per connection = (RSS after the hold − RSS "
          "before the first connection) ÷ connections; kernel socket buffers are not in it. \"Marginal\" leaves "
          "out the first tenth (at most 1,000) of the connections, which page in code and allocator arenas once.", "")
    if not servers:
        d.add("_Not measured._", "")
        return
    ws_rate = stat(d.runs("ws", case), "connect/per_second").median
    ws_rss = stat(d.runs("ws", case), "server/rss_per_connection_after_hold_bytes").median
    d.add("| Server | connects/s | ÷ ws | handshake p50 | handshake p99 | RSS per idle connection | ÷ ws | marginal RSS per connection |",
          "|---|---|---|---|---|---|---|---|")
    for s in servers:
        runs = d.runs(s, case)
        c = stat(runs, "connect/per_second")
        rss = stat(runs, "server/rss_per_connection_after_hold_bytes")
        marg = stat(runs, "server/rss_marginal_per_connection_bytes")
        d.add(f"| {s}{d.flags(s, case)} | {fmt_stat(c)} | {vs_ws(s, c.median, ws_rate)} | "
              f"{fmt_lat(stat(runs, 'connect/handshake_us/p50'))} | {fmt_lat(stat(runs, 'connect/handshake_us/p99'))} | "
              f"{fmt_stat(rss)} B | {vs_ws(s, rss.median, ws_rss)} | "
              f"{fmt_stat(marg) + ' B' if marg.median is not None else '–'} |")
    d.flush_notes()
    sub = f"{case.n:,} connections; {runs_text(d.cfg)}"
    cs = [stat(d.runs(s, case), "connect/per_second") for s in servers]
    charts.bar_chart(chart("connect-rate.svg"), "Connection rate", servers, [COLORS[s] for s in servers],
                     [x.median for x in cs], [x.lo for x in cs], [x.hi for x in cs], ylabel="connects/s", subtitle=sub)
    rs = [stat(d.runs(s, case), "server/rss_per_connection_after_hold_bytes") for s in servers]
    charts.bar_chart(chart("connect-memory.svg"), f"Server RSS per idle connection ({case.n:,} connections)",
                     servers, [COLORS[s] for s in servers], [x.median for x in rs], [x.lo for x in rs],
                     [x.hi for x in rs], ylabel="bytes per connection", fmt=charts.bytes_, subtitle=sub)
    img("connect-rate.svg", "connects per second by server")
    img("connect-memory.svg", "server RSS per idle connection by server")


def users_section(d: Doc, case: Case, img, chart) -> None:
    servers = [s for s in d.servers if is_ours(s) and d.runs(s, case)]
    d.add("## Users (ours only)", "", f"{case.n:,} connections, each its own user; `POST /api/send-to-user` to a "
          f"random user at {case.rate:,.0f} msg/s for {case.duration:g} s. The peers have no notion of users. Every "
          "message must arrive exactly once, in order, at the right user.", "")
    if not servers:
        d.add("_Not measured._", "")
        return
    d.add("| Server | deliveries/s | p50 | p90 | p99 | p99.9 | max | lost / reordered / duplicates / misrouted (all runs) | lossless |",
          "|---|---|---|---|---|---|---|---|---|")
    for s in servers:
        runs, lat = server_row_stats(d, s, case)
        t = stat(runs, "delivery/deliveries_per_second")
        integ = " / ".join(f"{sum(get(r, 'delivery/' + k) or 0 for r in runs):,}"
                           for k in ("lost", "reordered", "duplicates", "misrouted"))
        ok = all(lossless(r) for r in runs)
        d.add(f"| {s}{d.flags(s, case)} | {fmt_stat(t)} | {fmt_lat(lat['p50'])} | {fmt_lat(lat['p90'])} | "
              f"{fmt_lat(lat['p99'])} | {fmt_lat(lat['p99.9'])} | {fmt_lat(lat['max'])} | {integ} | "
              f"{'yes' if ok else '**NO — MESSAGES LOST, REORDERED OR MISROUTED**'} |")
    d.flush_notes()
    series = []
    for s in servers:
        _, lat = server_row_stats(d, s, case)
        series.append(charts.Series(s, COLORS[s], [lat[p].median for p in PERCENTILES],
                                    [lat[p].lo for p in PERCENTILES], [lat[p].hi for p in PERCENTILES]))
    charts.grouped_bar_chart(chart("users-latency.svg"), f"Send-to-user latency, {case.rate:,.0f} msg/s to {case.n:,} users",
                             PERCENTILES, series, ylabel="latency (log scale)", fmt=charts.microseconds, log=True,
                             subtitle=f"{runs_text(d.cfg)}")
    img("users-latency.svg", "send-to-user latency percentiles")


def growth_section(d: Doc, cases: list, img, chart) -> None:
    fan = [c for c in cases if c.kind == "fanout"]
    con = [c for c in cases if c.kind == "connect"]
    servers = [s for s in d.servers if any(d.runs(s, c) for c in cases)]
    d.add("## Growth with the number of connections", "")
    if not servers:
        d.add("_Not measured._", "")
        return
    msgs = fan[0].messages if fan else 0
    d.add(f"Fanout ({msgs:,} messages at full speed) and connect (held {con[0].hold:g} s) at each N. "
          "Each cell: median (min–max).", "")
    ns = [c.n for c in fan]
    d.add("| Server | " + " | ".join(f"deliveries/s at {n:,}" for n in ns) + " |", "|---" * (len(ns) + 1) + "|")
    for s in servers:
        d.add(f"| {s} | " + " | ".join(fmt_stat(stat(d.runs(s, c), "delivery/deliveries_per_second")) + d.flags(s, c)
                                       for c in fan) + " |")
    d.flush_notes()
    d.add("| Server | " + " | ".join(f"p99 at {n:,}" for n in ns) + " |", "|---" * (len(ns) + 1) + "|")
    for s in servers:
        d.add(f"| {s} | " + " | ".join(fmt_lat(stat(d.runs(s, c), "delivery/latency_us/p99")) for c in fan) + " |")
    d.add("")
    ns_c = [c.n for c in con]
    d.add("| Server | " + " | ".join(f"RSS/conn at {n:,}" for n in ns_c) + " |", "|---" * (len(ns_c) + 1) + "|")
    for s in servers:
        d.add(f"| {s} | " + " | ".join(
            (fmt_stat(stat(d.runs(s, c), "server/rss_per_connection_after_hold_bytes")) + " B"
             if d.runs(s, c) else "–") + d.flags(s, c) for c in con) + " |")
    d.flush_notes()
    d.add("| Server | " + " | ".join(f"connects/s at {n:,}" for n in ns_c) + " |", "|---" * (len(ns_c) + 1) + "|")
    for s in servers:
        d.add(f"| {s} | " + " | ".join(fmt_stat(stat(d.runs(s, c), "connect/per_second")) for c in con) + " |")
    d.add("")

    def series(cs, path):
        out = []
        for s in servers:
            st = [stat(d.runs(s, c), path) for c in cs]
            out.append(charts.Series(s, COLORS[s], [x.median for x in st], [x.lo for x in st], [x.hi for x in st]))
        return out
    sub = f"{runs_text(d.cfg)}"
    charts.line_chart(chart("growth-fanout.svg"), f"Fanout throughput vs connections ({msgs:,} messages)", ns,
                      series(fan, "delivery/deliveries_per_second"), xlabel="subscribers",
                      ylabel="deliveries/s (log scale)", log=True, subtitle=sub)
    charts.line_chart(chart("growth-latency.svg"), "Fanout p99 latency vs connections", ns,
                      series(fan, "delivery/latency_us/p99"), xlabel="subscribers", ylabel="p99 latency (log scale)",
                      fmt=charts.microseconds, log=True, subtitle=sub)
    charts.line_chart(chart("growth-memory.svg"), "Server RSS per idle connection vs connections", ns_c,
                      series(con, "server/rss_per_connection_after_hold_bytes"), xlabel="connections",
                      ylabel="bytes per connection", fmt=charts.bytes_, subtitle=sub,
                      hline=(700, "target for ours at 19k: 700 B"))
    charts.line_chart(chart("growth-connect.svg"), "Connection rate vs connections", ns_c,
                      series(con, "connect/per_second"), xlabel="connections", ylabel="connects/s", subtitle=sub)
    for name, alt in (("growth-fanout.svg", "fanout throughput against N"), ("growth-latency.svg", "p99 against N"),
                      ("growth-memory.svg", "RSS per connection against N"),
                      ("growth-connect.svg", "connects per second against N")):
        img(name, alt)


def glance(d: Doc, cases: dict) -> None:
    fan, rate, con = cases["fanout"][0], cases["rate"][0], cases["connect"][0]
    growth_con = [c for c in cases["growth"] if c.kind == "connect"]
    big = max(growth_con, key=lambda c: c.n) if growth_con else con
    d.add("## At a glance", "", "Medians; the sections below give the run ranges and the details.", "")
    cols = [(f"fanout deliveries/s at {fan.n:,}", fan, "delivery/deliveries_per_second", fmt_num),
            (f"p99 at {rate.rate:,.0f} msg/s to {rate.n:,}", rate, "delivery/latency_us/p99", None),
            (f"connects/s at {con.n:,}", con, "connect/per_second", fmt_num),
            (f"RSS per idle connection at {con.n:,}", con, "server/rss_per_connection_after_hold_bytes",
             lambda v: f"{v:,.0f} B")]
    if big.id != con.id:
        cols.append((f"RSS per idle connection at {big.n:,}", big, "server/rss_per_connection_after_hold_bytes",
                     lambda v: f"{v:,.0f} B"))
    d.add("| Server | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|")
    for s in d.servers:
        cells = []
        for _, case, path, f in cols:
            st = stat(d.runs(s, case), path)
            if st.median is None:
                cells.append("–")
            elif f is None:
                cells.append(fmt_lat(Stat(st.median, None, None, 1)))
            else:
                cells.append(f(st.median))
        d.add(f"| {s} | " + " | ".join(cells) + " |")
    d.add("")


def targets(d: Doc, cases: dict) -> list:
    """Rows of the targets table: [target, required, ours-1t cell, ours-2t cell]."""
    fan, rate, con, users = cases["fanout"][0], cases["rate"][0], cases["connect"][0], cases["users"][0]
    growth_con = [c for c in cases["growth"] if c.kind == "connect"]
    big = max(growth_con, key=lambda c: c.n) if growth_con else con

    def verdict(ok: Optional[bool], text: str) -> str:
        if ok is None:
            return text or "not measured"
        return f"{text} {'✅ pass' if ok else '❌ **fail**'}"

    def cmp_ratio(server, case, path, need, higher_is_better=True):
        mine = stat(d.runs(server, case), path).median
        ws = stat(d.runs("ws", case), path).median
        r = ratio(mine, ws)
        if r is None:
            return verdict(None, "" if mine is None else "ws not measured" if ws is None else "")
        return verdict(r >= need if higher_is_better else r <= need, fmt_ratio(r))

    rows = []
    rows.append([f"Fanout throughput at {fan.n:,} subscribers", "≥ 30× ws"]
                + [cmp_ratio(s, fan, "delivery/deliveries_per_second", 30) for s in ("ours-1t", "ours-2t")])
    cells = []
    for s in ("ours-1t", "ours-2t"):
        v = stat(d.runs(s, big), "server/rss_per_connection_after_hold_bytes").median
        m = stat(d.runs(s, big), "server/rss_marginal_per_connection_bytes").median
        text = "" if m is None else f"{m:,.0f} B marginal" + (f" ({v:,.0f} B averaged over all)" if v is not None else "")
        cells.append(verdict(None if m is None else m < 700, text))
    rows.append([f"Server RSS per idle connection at {big.n:,} (marginal: past the first 1,000)", "< 700 B"] + cells)
    rows.append([f"Connects/s at {con.n:,}", "≥ 3× ws"]
                + [cmp_ratio(s, con, "connect/per_second", 3) for s in ("ours-1t", "ours-2t")])
    rows.append([f"p99 latency at {rate.rate:,.0f} msg/s to {rate.n:,}", "≤ 1/3 of ws"]
                + [cmp_ratio(s, rate, "delivery/latency_us/p99", 1 / 3, higher_is_better=False)
                   for s in ("ours-1t", "ours-2t")])
    cells = []
    for s in ("ours-1t", "ours-2t"):
        runs = d.runs(s, users)
        if not runs:
            cells.append(verdict(None, ""))
        else:
            n_ok = sum(1 for r in runs if lossless(r))
            cells.append(verdict(n_ok == len(runs), f"{n_ok}/{len(runs)} runs lossless"))
    rows.append([f"Users: send-to-user to {users.n:,} users at {users.rate:,.0f} msg/s", "nothing lost, reordered, "
                 "duplicated or misrouted"] + cells)
    mine = stat(d.runs("ours-history", fan), "delivery/deliveries_per_second").median
    base = stat(d.runs("ours-1t", fan), "delivery/deliveries_per_second").median
    r = ratio(mine, base)
    rows.append([f"Fanout at {fan.n:,} subscribers on a topic with history (ours-history)",
                 "≥ 85 % of ours-1t (history costs ≤ 15 %)",
                 verdict(None, "") if r is None else verdict(r >= 0.85, f"{r:.0%}"), "(ours-1t only)"])
    # As many subscribers as ours-1t's, with Pusher frames and handshakes, and the same native
    # publisher (see Conditions).
    shares = []
    for label, case, path in (("fanout", fan, "delivery/deliveries_per_second"), ("connects", con, "connect/per_second")):
        shares.append((label, ratio(stat(d.runs("ours-pusher", case), path).median,
                                    stat(d.runs("ours-1t", case), path).median)))
    if all(r is None for _, r in shares):
        cell = verdict(None, "")
    else:
        text = ", ".join(f"{label} {'–' if r is None else f'{r:.0%}'}" for label, r in shares)
        cell = verdict(None if any(r is None for _, r in shares) else all(r >= 0.9 for _, r in shares), text)
    rows.append([f"Pusher protocol (ours-pusher): fanout and connects at {fan.n:,}",
                 "≥ 90 % of the native protocol (ours-1t)", cell, "(ours-1t only)"])
    ref = api_reference(d, cases["api"])
    for c in cases["api"]:
        if c.mode in ("ws", "api8w"):
            continue
        need = 0.9 if c.mode == "batch" else 0.8
        mine = stat(d.runs("ours-1t", c), "delivery/deliveries_per_second").median
        r = ratio(mine, ref)
        cell = verdict(None, "") if r is None else verdict(r >= need, f"{r:.0%}")
        label = API_MODES[c.mode] + (f", {d.cfg.api_window} in flight" if c.mode != "batch" else
                                     f", {d.cfg.api_batch} per request")
        rows.append([f"API at {c.n:,} subscribers: {label}", f"≥ {need:.0%} of WebSocket `publish`",
                     cell, "(ours-1t only)"])
    return rows


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", action="store_true", help="only re-render the markdown and charts from the raw results")
    ap.add_argument("--quick", action="store_true", help="same as QUICK=1")
    args = ap.parse_args()

    def stop(signum, _frame):  # run the finally blocks: no server is left running
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    if args.quick:
        os.environ["QUICK"] = "1"
    cfg = load_config()
    if args.render:  # name the cases as the measuring run did, unless the environment says otherwise
        try:
            with open(os.path.join(cfg.raw_dir, "knobs.json")) as f:
                SAVED_KNOBS.update(json.load(f))
            cfg = load_config()
        except (OSError, ValueError):
            pass
    t0 = time.monotonic()
    if not args.render:
        try:
            measure(cfg)
        except KeyboardInterrupt as e:
            log(f"bench: interrupted ({e or 'SIGINT'}); raw results of finished cases are kept, nothing rendered")
            return 130
    text = render(cfg)
    os.makedirs(os.path.dirname(cfg.md_path), exist_ok=True)
    with open(cfg.md_path, "w", encoding="utf-8") as f:
        f.write(text)
    log(f"bench: wrote {os.path.relpath(cfg.md_path, ROOT)} and its charts in {(time.monotonic() - t0) / 60:.1f} min")
    if "❌" in text or "NOT LOSSLESS" in text or "MESSAGES LOST" in text:
        log("bench: some targets failed or runs had problems; see the targets table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
