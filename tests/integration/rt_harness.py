"""Harness for the Python integration tests of realtime-server.

Drives the REAL server binary over loopback, with clients that share no code with the
server: JWTs are minted here (hmac + hashlib + base64url), WebSocket clients are either the
`websockets` library (polite, auto-pong) or the hand-written `RawWS` below (for protocol
violations, slow consumers and peers that never answer pings).

Only the standard library and Debian's python3-websockets (10.x) are used.

Environment:
  REALTIME_SERVER     path of the binary (default ../../build/release/realtime-server,
                      relative to this file)
  REDIS_SERVER        redis-server binary for the cluster tests (default: redis-server on PATH)
  RT_KEEP_LOGS=1      print the server log after every test, not only after failures
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import websockets
import websockets.client
import websockets.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.environ.get(
    "REALTIME_SERVER",
    os.path.normpath(os.path.join(HERE, "..", "..", "build", "release", "realtime-server")),
)

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 5.0          # every single wait in these tests has a deadline
STARTUP_DEADLINE = 10.0
STOP_DEADLINE = 10.0

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# ------------------------------------------------------------------------------------------
# Small utilities

_handed_out_ports: set[int] = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port that is free now, chosen at random below the kernel's ephemeral range.

    A port from bind(127.0.0.1:0) lies in the ephemeral range, so between closing the probe and
    the server binding it, any outgoing connection of a test running in parallel may take it as
    its local port (then the server's bind fails). Ports below that range are never handed out
    by the kernel; the ones this process already returned are not returned again."""
    low = min(_ephemeral_low(), 65536)
    rng = random.SystemRandom()
    if low > 12000:
        for _ in range(200):
            port = rng.randrange(10000, low)
            if port in _handed_out_ports:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((HOST, port))
                except OSError:
                    continue
            _handed_out_ports.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def random_secret(n: int = 48) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def parse_timestamp(ts: str) -> _dt.datetime:
    """Parse the server's ISO 8601 UTC millisecond timestamp (2025-01-01T12:00:00.000Z)."""
    if not isinstance(ts, str) or not TIMESTAMP_RE.match(ts):
        raise ValueError(f"not an ISO 8601 UTC millisecond timestamp: {ts!r}")
    return _dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.timezone.utc)


def server_binary_available() -> bool:
    return os.path.isfile(SERVER) and os.access(SERVER, os.X_OK)


# ------------------------------------------------------------------------------------------
# JWT (HS256/384/512), an implementation independent of the server's

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError(f"not base64url: {text!r}")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def make_jwt(claims: dict, secret: str | bytes, alg: str = "HS256", header: dict | None = None,
             signature: str | None = None) -> str:
    """Mint a compact JWS. alg outside HS* gives an HMAC-SHA256 signature (for alg-confusion
    tests) unless `signature` is given explicitly ("" for alg none)."""
    hdr = {"alg": alg, "typ": "JWT"}
    if header:
        hdr.update(header)
    signing_input = b64url(_compact(hdr)) + "." + b64url(_compact(claims))
    if signature is None:
        key = secret.encode("utf-8") if isinstance(secret, str) else secret
        digest = _HASHES.get(alg, hashlib.sha256)
        signature = b64url(hmac.new(key, signing_input.encode("ascii"), digest).digest())
    return signing_input + "." + signature


def verify_jwt(token: str, secret: str | bytes) -> tuple[dict, dict]:
    """Verify an HS* token; returns (header, claims) or raises ValueError."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("token must have three parts")
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    alg = header.get("alg")
    if alg not in _HASHES:
        raise ValueError(f"unexpected alg {alg!r}")
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    expected = hmac.new(key, (parts[0] + "." + parts[1]).encode("ascii"), _HASHES[alg]).digest()
    if not hmac.compare_digest(expected, b64url_decode(parts[2])):
        raise ValueError("bad signature")
    return header, claims


# ------------------------------------------------------------------------------------------
# HTTP

def http_request(port: int, method: str, path: str, body=None, headers: dict | None = None,
                 timeout: float = DEFAULT_TIMEOUT, ssl_context=None) -> tuple[int, dict, bytes]:
    """One HTTP request on a fresh connection (HTTPS with `ssl_context`). Returns (status,
    lower-cased headers, body)."""
    if ssl_context is not None:
        conn = http.client.HTTPSConnection(HOST, port, timeout=timeout, context=ssl_context)
    else:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def parse_body(data: bytes):
    """JSON-decode a response body; the raw text if it is not JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return data.decode("utf-8", "replace")


def http_json(port: int, method: str, path: str, body=None, headers: dict | None = None,
              timeout: float = DEFAULT_TIMEOUT, ssl_context=None):
    status, _, data = http_request(port, method, path, body, headers, timeout, ssl_context)
    return status, parse_body(data)


def raw_http_exchange(port: int, request_head: bytes, body: bytes = b"",
                      timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send a request head + body on a raw socket while reading the response concurrently
    (the server may answer, e.g. 413, before it has read the whole body). Returns
    (status or None, whole response bytes)."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    send_error = []

    def sender():
        try:
            sock.sendall(request_head + body)
        except OSError as exc:  # the server may stop reading and close: fine
            send_error.append(exc)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            data = b"".join(chunks)
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", data[:head_end])
                if m and len(data) >= head_end + 4 + int(m.group(1)):
                    break
    finally:
        t.join(timeout=timeout)
        sock.close()
    data = b"".join(chunks)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else None), data


# ------------------------------------------------------------------------------------------
# Metrics (Prometheus text format)

def parse_metrics(text: str) -> dict[str, float]:
    """name -> value; samples of one name with different labels are summed."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


# ------------------------------------------------------------------------------------------
# The server process

class ServerProcess:
    def __init__(self, extra_args=(), jwt_secret: str | None = None, api_key: str | None = None,
                 threads: int = 2, env: dict | None = None, redis: str | None = None,
                 node_id: str | None = None, ssl_context=None):
        self.port = free_port()
        self.ssl_context = ssl_context  # a TLS server (--tls-cert): HTTPS trusting its CA
        self.node_id = node_id
        cluster = []
        if redis:
            cluster += ["--redis", redis]
        if node_id:
            cluster += ["--node-id", node_id]
        self.jwt_secret = jwt_secret or random_secret(48)
        self.api_key = api_key or secrets.token_hex(16)
        # A JWKS URL replaces the secret (the server takes one key source only).
        key_source = [] if "--jwt-jwks-url" in extra_args else ["--jwt-secret", self.jwt_secret]
        self.args = [SERVER, "--host", HOST, "--port", str(self.port),
                     *key_source, "--api-key", self.api_key,
                     "--threads", str(threads), *cluster, *extra_args]
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        fd, self.log_path = tempfile.mkstemp(prefix="realtime-server-", suffix=".log")
        os.close(fd)
        self.proc: subprocess.Popen | None = None
        self.started = False

    # -- lifecycle
    def start(self) -> "ServerProcess":
        if not server_binary_available():
            raise unittest.SkipTest(f"server binary not found: {SERVER} (set REALTIME_SERVER)")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + STARTUP_DEADLINE
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited during startup with {self.proc.returncode}\n"
                                     + self.log())
            try:
                status, _, _ = http_request(self.port, "GET", "/health/realtime", timeout=1.0,
                                            ssl_context=self.ssl_context)
                if status == 200:
                    self.started = True
                    return self
                last = f"HTTP {status}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"server not healthy within {STARTUP_DEADLINE}s (last: {last})\n"
                             + self.log())

    def signal(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_DEADLINE) -> int | None:
        """SIGTERM and wait; returns the exit code, or None (then killed) on timeout."""
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.kill()
        return code

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return "<no log>"

    def remove_log(self):
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    # -- tokens
    def token(self, user_id="42", roles=None, ttl: int = 3600, **claims) -> str:
        body = {}
        if user_id is not None:
            body["user-id"] = user_id
        if roles is not None:
            body["roles"] = roles
        body["iat"] = int(time.time())
        body["exp"] = int(time.time()) + ttl
        body.update(claims)
        return make_jwt(body, self.jwt_secret)

    # -- HTTP
    def get(self, path: str, headers=None):
        return http_json(self.port, "GET", path, headers=headers, ssl_context=self.ssl_context)

    def api_sync(self, method: str, path: str, body=None, key: str | None = ...,
                 headers: dict | None = None):
        hdrs = {"Content-Type": "application/json"}
        k = self.api_key if key is ... else key
        if k is not None:
            hdrs["Authorization"] = f"Bearer {k}"
        if headers:
            hdrs.update(headers)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        return http_json(self.port, method, path, body=body, headers=hdrs, ssl_context=self.ssl_context)

    def health(self):
        return self.get("/health/realtime")

    def metrics_text(self) -> str:
        status, _, data = http_request(self.port, "GET", "/metrics", ssl_context=self.ssl_context)
        if status != 200:
            raise AssertionError(f"GET /metrics -> {status}")
        return data.decode("utf-8")

    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.metrics_text())

    def metric(self, name: str) -> float | None:
        return self.metrics().get(name)


# ------------------------------------------------------------------------------------------
# Raw WebSocket client (sync, blocking sockets with deadlines)

class _PortTaken(Exception):
    pass


class RedisProcess:
    """A throwaway redis-server on a free loopback port, no persistence. stop() and start()
    again keep the port, to test a Redis restart."""

    BINARY = os.environ.get("REDIS_SERVER", "redis-server")

    def __init__(self, extra_args=()):
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.started_once = False
        fd, self.log_path = tempfile.mkstemp(prefix="redis-", suffix=".log")
        os.close(fd)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    @classmethod
    def available(cls) -> bool:
        import shutil
        return shutil.which(cls.BINARY) is not None

    def start(self) -> "RedisProcess":
        """Start redis-server. On the first start only, a port taken meanwhile by another
        process is replaced by a fresh one (a restart must keep its port)."""
        if not self.available():
            raise unittest.SkipTest(f"{self.BINARY} not found (apt-get install redis-server)")
        attempts = 1 if self.started_once else 5
        for attempt in range(attempts):
            try:
                return self._start_once()
            except _PortTaken:
                if attempt + 1 == attempts:
                    raise AssertionError(f"redis-server: port {self.port} in use\n{self.log()}")
                self.port = free_port()
                self.on_new_port()
        raise AssertionError("unreachable")

    def on_new_port(self):
        """Called after start() replaced a taken port; arguments derived from it are rebuilt."""

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _start_once(self) -> "RedisProcess":
        log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.BINARY, "--port", str(self.port), "--bind", HOST, "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log_path, "rb") as f:
                    f.seek(log_start)
                    out = f.read().decode("utf-8", "replace")
                if "Address already in use" in out and not self.started_once:
                    raise _PortTaken()
                raise AssertionError(f"redis-server exited with {self.proc.returncode}\n{out[-4000:]}")
            try:
                if self.command("PING") == "PONG":
                    self.started_once = True
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"redis-server not answering within {STARTUP_DEADLINE}s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def remove_log(self):
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    def command(self, *args, timeout: float = DEFAULT_TIMEOUT):
        """One RESP command on a fresh connection; returns str, int, list or None."""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode() if isinstance(a, (str, int)) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection((HOST, self.port), timeout=timeout) as sock, \
                sock.makefile("rb") as f:
            sock.sendall(out)

            def read():
                line = f.readline()
                if not line:
                    raise OSError("redis closed the connection")
                kind, rest = line[:1], line[1:-2]
                if kind == b"+":
                    return rest.decode()
                if kind == b"-":
                    raise RuntimeError(rest.decode())
                if kind == b":":
                    return int(rest)
                if kind == b"$":
                    n = int(rest)
                    if n < 0:
                        return None
                    data = f.read(n + 2)[:-2]
                    return data.decode("utf-8", "replace")
                if kind == b"*":
                    n = int(rest)
                    return None if n < 0 else [read() for _ in range(n)]
                raise OSError(f"unexpected RESP line {line!r}")
            return read()


def redis_key_slot(key: str | bytes) -> int:
    """The Redis Cluster hash slot of a key or shard channel (CRC16/XMODEM mod 16384, with
    {hash tags}), computed independently of the server's C++."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc % 16384


class RedisClusterProcess:
    """A throwaway Redis Cluster: `masters` redis-server processes on free loopback ports (no
    replicas, no persistence, node files in a temporary directory), joined with
    `redis-cli --cluster create`. start() returns once every node reports cluster_state:ok and
    the same full slot map."""

    CLI = os.environ.get("REDIS_CLI", "redis-cli")

    def __init__(self, masters: int = 3):
        import shutil
        self._shutil = shutil
        self.dir = tempfile.mkdtemp(prefix="redis-cluster-")
        self.nodes = [RedisProcess() for _ in range(masters)]
        for n in self.nodes:
            self._cluster_args(n)
            n.on_new_port = lambda n=n: self._cluster_args(n)

    def _cluster_args(self, n: "RedisProcess"):
        # The bus port defaults to port + 10000, which may be taken or past 65535.
        n.extra_args = ["--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                        "--cluster-node-timeout", "2000",
                        "--cluster-config-file", os.path.join(self.dir, f"nodes-{n.port}.conf"),
                        "--dir", self.dir]

    @property
    def url(self) -> str:
        return "redis-cluster://" + ",".join(f"{HOST}:{n.port}" for n in self.nodes)

    def start(self) -> "RedisClusterProcess":
        import shutil
        if not RedisProcess.available() or shutil.which(self.CLI) is None:
            raise unittest.SkipTest("redis-server / redis-cli not found (apt-get install redis-server)")
        for n in self.nodes:
            n.start()
        r = subprocess.run([self.CLI, "--cluster", "create", *(f"{HOST}:{n.port}" for n in self.nodes),
                            "--cluster-replicas", "0", "--cluster-yes"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError(f"redis-cli --cluster create failed:\n{r.stdout}\n{r.stderr}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in n.command("CLUSTER", "INFO") for n in self.nodes):
                maps = [self.slot_map(n) for n in self.nodes]
                if all(m == maps[0] for m in maps) and len(set(maps[0].values())) == len(self.nodes):
                    return self
            time.sleep(0.1)
        raise AssertionError("redis cluster not ok within 20s")

    @staticmethod
    def slot_map(node: "RedisProcess") -> dict:
        """{(first, last): master port} as `node` sees it."""
        return {(r[0], r[1]): r[2][1] for r in node.command("CLUSTER", "SLOTS")}

    def master_for(self, key: str) -> "RedisProcess":
        slot = redis_key_slot(key)
        for (first, last), port in self.slot_map(self.nodes[0]).items():
            if first <= slot <= last:
                return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"slot {slot} not served")

    def command(self, key: str, *args):
        """A command on the master owning `key`'s slot."""
        return self.master_for(key).command(*args)

    def stop(self):
        for n in self.nodes:
            n.stop()

    def remove_logs(self):
        for n in self.nodes:
            n.remove_log()
        self._shutil.rmtree(self.dir, ignore_errors=True)


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload")

    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    @property
    def close_code(self) -> int | None:
        if self.opcode != 0x8 or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    def __repr__(self):
        return f"Frame(fin={self.fin}, rsv={self.rsv}, opcode={self.opcode:#x}, len={len(self.payload)})"


OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def encode_frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True,
                 rsv: int = 0, mask_key: bytes | None = None, length_override: int | None = None) -> bytes:
    b0 = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    n = len(payload) if length_override is None else length_override
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return head + key + body
    return head + payload


class RawWS:
    """Hand-written WebSocket client: does exactly what it is told and nothing else (no
    automatic pongs, no close replies unless asked, no reading unless asked)."""

    def __init__(self, port: int, token: str | None, path: str = "/ws", rcvbuf: int | None = None,
                 headers: dict | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.buf = bytearray()
        self.eof = False
        key = base64.b64encode(os.urandom(16)).decode()
        target = path
        if token is not None:
            target += ("&" if "?" in path else "?") + "token=" + urllib.parse.quote(token, safe="")
        lines = [f"GET {target} HTTP/1.1", f"Host: {HOST}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end]).decode("latin-1")
        self.response_head = head
        del self.buf[:end + 4]
        status_line = head.split("\r\n", 1)[0]
        self.status = int(status_line.split()[1])
        if self.status != 101:
            raise AssertionError(f"raw handshake failed: {status_line}")
        expected = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        m = re.search(r"(?im)^sec-websocket-accept:\s*(\S+)", head)
        if not m or m.group(1) != expected:
            raise AssertionError(f"bad Sec-WebSocket-Accept in {head!r}")

    # -- low level
    def _fill(self, deadline: float):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            raise EOFError("server closed the TCP connection")
        self.buf += chunk

    def _need(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **kw):
        self.send_raw(encode_frame(opcode, payload, **kw))

    def send_text(self, text: str):
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def recv_frame(self, timeout: float = DEFAULT_TIMEOUT) -> Frame:
        """Next frame. Raises socket.timeout, EOFError, or ConnectionResetError."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._need(2, deadline)
        if b1 & 0x80:
            raise AssertionError("server sent a masked frame (RFC 6455 5.1 forbids it)")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._need(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._need(8, deadline))[0]
        payload = self._need(n, deadline)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0x0F, payload)

    def recv_json(self, timeout: float = DEFAULT_TIMEOUT, pong: bool = False):
        """Next text message as JSON (unfragmented frames; pings answered only if pong=True)."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f.opcode == OP_PING:
                if pong:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_TEXT and f.fin:
                return json.loads(f.payload.decode("utf-8"))
            raise AssertionError(f"expected a text frame, got {f!r} {f.payload[:80]!r}")

    def read_until_end(self, timeout: float) -> dict:
        """Read frames until a close frame, EOF/reset, or the deadline. Returns a dict with
        keys frames (non-control frames), pings, close_code (None if no close frame),
        close_frame (bool), eof (bool), timed_out (bool), elapsed."""
        start = time.monotonic()
        deadline = start + timeout
        out = {"frames": [], "pings": 0, "close_code": None, "close_frame": False,
               "eof": False, "timed_out": False}
        while True:
            try:
                f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except (socket.timeout, TimeoutError):
                out["timed_out"] = True
                break
            except (EOFError, ConnectionResetError, BrokenPipeError):
                out["eof"] = True
                break
            if f.opcode == OP_CLOSE:
                out["close_frame"] = True
                out["close_code"] = f.close_code
                break
            if f.opcode == OP_PING:
                out["pings"] += 1
                continue
            out["frames"].append(f)
        out["elapsed"] = time.monotonic() - start
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------------------------------
# Test case base

def server_args(*args):
    """Decorator: extra command-line flags for the server started for this test."""
    def deco(fn):
        fn.server_args = list(args)
        return fn
    return deco


def no_server(fn):
    """Decorator: the test manages its own processes; setUp starts no server."""
    fn.no_server = True
    return fn


def expect_exit(code):
    """Decorator: exit status the test expects from the server at cleanup (None: don't check)."""
    def deco(fn):
        fn.expect_exit = code
        return fn
    return deco


def merge_args(base, override):
    """Flags of `override` replace the same flags of `base` (every flag here takes a value)."""
    def pairs(args):
        return [(args[i], args[i + 1]) for i in range(0, len(args), 2)]
    merged = dict(pairs(list(base)))
    merged.update(pairs(list(override)))
    return [x for kv in merged.items() for x in kv]


class RealtimeTestCase(unittest.IsolatedAsyncioTestCase):
    """One fresh server per test (flags from @server_args), stopped with SIGTERM at cleanup
    and required to exit 0. Clients opened through the helpers are closed before that."""

    SERVER_ARGS: list[str] = []

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        ret = super().run(result)
        failed = len(result.failures) + len(result.errors) > before
        srv = getattr(self, "server", None)
        if srv is not None:
            if failed or os.environ.get("RT_KEEP_LOGS"):
                sys.stderr.write(f"\n----- server log for {self.id()} (port {srv.port}) -----\n")
                sys.stderr.write(srv.log())
                sys.stderr.write("\n----- end of server log -----\n")
                sys.stderr.flush()
            srv.remove_log()
        return ret

    def _method_attr(self, name, default=None):
        return getattr(getattr(self, self._testMethodName), name, default)

    async def asyncSetUp(self):
        # IsolatedAsyncioTestCase runs the loop in debug mode; only report really slow steps.
        asyncio.get_running_loop().slow_callback_duration = 2.0

    def setUp(self):
        self.server = None
        if self._method_attr("no_server", False):
            return
        self.server = self.start_server(merge_args(self.SERVER_ARGS, self._method_attr("server_args", [])))

    def start_server(self, extra_args=(), **kw) -> ServerProcess:
        srv = ServerProcess(extra_args, **kw)
        expected = self._method_attr("expect_exit", 0)
        self.addCleanup(self._stop_server, srv, expected)
        srv.start()
        return srv

    def _stop_server(self, srv: ServerProcess, expected):
        if not srv.started:  # start() already failed the test
            srv.kill()
            return
        code = srv.stop()
        if code is None:
            self.fail(f"server did not exit within {STOP_DEADLINE}s of SIGTERM (killed)")
        if expected is not None and code != expected:
            self.fail(f"server exit status {code}, expected {expected}")

    # -- convenience
    @property
    def port(self) -> int:
        return self.server.port

    def token(self, user_id="42", roles=None, **claims) -> str:
        return self.server.token(user_id, roles, **claims)

    async def api(self, method: str, path: str, body=None, **kw):
        """(status, parsed JSON body) of an API call made in a worker thread, so that the
        event loop keeps serving the WebSocket clients meanwhile."""
        return await asyncio.to_thread(self.server.api_sync, method, path, body, **kw)

    async def api_ok(self, method: str, path: str, body=None) -> dict:
        status, data = await self.api(method, path, body)
        self.assertEqual(status, 200, f"{method} {path} {body!r} -> {status} {data!r}")
        self.assertIsInstance(data, dict)
        return data

    async def metric(self, name: str) -> float | None:
        return await asyncio.to_thread(self.server.metric, name)

    async def connect(self, user_id="42", roles=None, token: str | None = None, claims=None,
                      via_header: bool = False, origin: str | None = None,
                      extra_headers=None, **kw):
        """websockets client; returns (ws, connected frame). Closed at cleanup."""
        if token is None:
            token = make_jwt(claims, self.server.jwt_secret) if claims is not None \
                else self.token(user_id, roles)
        headers = list(extra_headers or [])
        scheme = "wss" if self.server.ssl_context is not None else "ws"
        if via_header:
            uri = f"{scheme}://{HOST}:{self.port}/ws"
            headers.append(("Authorization", f"Bearer {token}"))
        else:
            uri = f"{scheme}://{HOST}:{self.port}/ws?token={urllib.parse.quote(token, safe='')}"
        opts = dict(max_queue=None, max_size=2 ** 24, open_timeout=DEFAULT_TIMEOUT, close_timeout=2)
        if self.server.ssl_context is not None:
            opts["ssl"] = self.server.ssl_context
        opts.update(kw)
        ws = await websockets.client.connect(uri, extra_headers=headers or None, origin=origin, **opts)
        self.addAsyncCleanup(self._close_ws, ws)
        connected = await self.recv_json(ws)
        self.assertEqual(connected.get("type"), "connected", connected)
        return ws, connected

    async def _close_ws(self, ws):
        try:
            await asyncio.wait_for(ws.close(), 5)
        except Exception:
            pass

    def raw(self, token: str | None = ..., **kw) -> RawWS:
        if token is ...:
            token = self.token()
        r = RawWS(self.port, token, **kw)
        self.addCleanup(r.close)
        return r

    async def recv_json(self, ws, timeout: float = DEFAULT_TIMEOUT) -> dict:
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout)
        except asyncio.TimeoutError:
            self.fail(f"no message within {timeout}s")
        except websockets.exceptions.ConnectionClosed as exc:
            self.fail(f"connection closed while waiting for a message: {exc}")
        self.assertIsInstance(raw, str, "server sent a binary frame; JSON must come as text")
        msg = json.loads(raw)
        self.assertIsInstance(msg, dict, f"server message is not a JSON object: {raw!r}")
        self.assertIsInstance(msg.get("type"), str, f"server message without string type: {raw!r}")
        return msg

    async def expect_silence(self, ws, duration: float = 0.3):
        try:
            raw = await asyncio.wait_for(ws.recv(), duration)
        except asyncio.TimeoutError:
            return
        self.fail(f"unexpected message: {raw!r}")

    async def command(self, ws, obj, timeout: float = DEFAULT_TIMEOUT) -> dict:
        await ws.send(obj if isinstance(obj, str) else json.dumps(obj))
        return await self.recv_json(ws, timeout)

    async def assert_ping_works(self, ws, ref="alive"):
        reply = await self.command(ws, {"action": "ping", "ref": ref})
        self.assertEqual(reply.get("type"), "pong", reply)
        self.assertEqual(reply.get("ref"), ref, reply)

    async def wait_closed_code(self, ws, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Wait for the connection to close, draining messages; returns the received close
        code (1006 if the TCP connection ended without a close frame)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
            except websockets.exceptions.ConnectionClosed as exc:
                return exc.code
            except asyncio.TimeoutError:
                break
        self.fail(f"connection still open after {timeout}s")

    def assert_timestamp(self, ts, max_skew: float = 60.0):
        try:
            when = parse_timestamp(ts)
        except ValueError as exc:
            self.fail(str(exc))
        skew = abs((when - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
        self.assertLess(skew, max_skew, f"timestamp {ts} is {skew:.1f}s away from now (UTC)")

    async def eventually(self, fn, predicate, timeout: float = DEFAULT_TIMEOUT, what: str = ""):
        """Poll `await fn()` until predicate(value); returns the last value."""
        deadline = time.monotonic() + timeout
        value = None
        while True:
            value = await fn()
            if predicate(value):
                return value
            if time.monotonic() > deadline:
                self.fail(f"{what or 'condition'} not reached within {timeout}s; last value {value!r}")
            await asyncio.sleep(0.05)
