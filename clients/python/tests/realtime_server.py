"""The real realtime-server binary as a test fixture: start on a free port, wait for health,
call the HTTP API, mint tokens, stop with SIGTERM. Every wait has a deadline.

REALTIME_SERVER overrides the binary (default build/release/realtime-server in the repo root,
found from this file's location).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
SERVER = os.environ.get("REALTIME_SERVER",
                        os.path.join(REPO_ROOT, "build", "release", "realtime-server"))
HOST = "127.0.0.1"
STARTUP_DEADLINE = 10.0
STOP_DEADLINE = 10.0
HTTP_TIMEOUT = 5.0


def binary_available() -> bool:
    return os.path.isfile(SERVER) and os.access(SERVER, os.X_OK)


_handed_out_ports: set = set()


def free_port() -> int:
    """A loopback port free now, chosen at random below the kernel's ephemeral range (a port
    from bind(0) lies in it, so a parallel test's outgoing connection could take it first)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = min(int(f.read().split()[0]), 65536)
    except (OSError, ValueError, IndexError):
        low = 32768
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


def mint_token(secret: str, user_id: str, roles=(), ttl: Optional[int] = None) -> str:
    """A token from the server's own `token` subcommand."""
    args = [SERVER, "token", "--secret", secret, "--user-id", str(user_id)]
    if roles:
        args += ["--roles", ",".join(roles)]
    if ttl is not None:
        args += ["--ttl", str(ttl)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=True)
    return out.stdout.strip().splitlines()[-1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_token(secret: str, claims: dict) -> str:
    """An HS256 JWT with exactly `claims`: for claims the `token` subcommand cannot set (the
    presence `info` claim)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


class RealtimeServer:
    def __init__(self, port: Optional[int] = None, jwt_secret: Optional[str] = None,
                 api_key: Optional[str] = None, extra_args=("--publish-patterns", "chat:*"),
                 ssl_context=None):
        self.port = port or free_port()
        # With --tls-cert/--tls-key in extra_args: an ssl.SSLContext trusting the server's CA.
        self.ssl_context = ssl_context
        self.jwt_secret = jwt_secret or secrets.token_urlsafe(36)  # 48 characters
        self.api_key = api_key or secrets.token_hex(16)
        self.extra_args = list(extra_args)
        fd, self.log_path = tempfile.mkstemp(prefix="rt-python-client-", suffix=".log")
        os.close(fd)
        self.proc: Optional[subprocess.Popen] = None

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://{HOST}:{self.port}/ws"

    def start(self) -> "RealtimeServer":
        args = [SERVER, "--host", HOST, "--port", str(self.port), "--jwt-secret", self.jwt_secret,
                "--api-key", self.api_key, "--threads", "2", *self.extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_DEADLINE
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited during startup ({self.proc.returncode}):\n"
                                   + self.log())
            try:
                status, _ = self.http("GET", "/health/realtime", timeout=1.0)
                if status == 200:
                    return self
                last = status
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server not healthy within {STARTUP_DEADLINE}s ({last!r}):\n" + self.log())

    def terminate(self) -> None:
        """SIGTERM without waiting (graceful shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = STOP_DEADLINE) -> Optional[int]:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> Optional[int]:
        """SIGTERM and wait; kill and return None if it does not exit in time."""
        if self.proc is None:
            return None
        self.terminate()
        code = self.wait()
        if code is None:
            self.kill()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_DEADLINE)

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def remove_log(self) -> None:
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    def token(self, user_id: str = "42", roles=(), ttl: Optional[int] = None,
              info: Optional[dict] = None) -> str:
        """From the server's `token` subcommand; with `info`, signed here (the subcommand has
        no option for it) with the same claims plus `info`."""
        if info is None:
            return mint_token(self.jwt_secret, user_id, roles, ttl)
        now = int(time.time())
        return sign_token(self.jwt_secret, {"user-id": str(user_id), "roles": list(roles),
                                            "iat": now, "exp": now + (ttl or 3600), "info": info})

    # -- HTTP (blocking; call through a thread executor from async tests)
    def http(self, method: str, path: str, body: Any = None, auth: bool = False,
             timeout: float = HTTP_TIMEOUT) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        scheme = "https" if self.ssl_context else "http"
        req = urllib.request.Request(f"{scheme}://{HOST}:{self.port}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw.decode("utf-8"))
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def api(self, method: str, path: str, body: Any = None) -> dict:
        status, data = self.http(method, path, body, auth=True)
        if status != 200:
            raise AssertionError(f"{method} {path} {body!r} -> {status} {data!r}")
        return data
