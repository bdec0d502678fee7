"""--jwt-jwks-url: the server verifies tokens with keys it fetches from a JSON Web Key Set. The
keys, the JWKS and the tokens are made by Node's `jose` (an independent JOSE implementation,
tests/integration/node); the JWKS is served by a Python HTTP(S) server on loopback whose answer
each test changes (new keys, garbage, down)."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
import unittest
import urllib.parse

import websockets

from local_ca import LocalCA
from rt_harness import HERE, HOST, SERVER, RealtimeTestCase, free_port, no_server

NODE_DIR = os.path.join(HERE, "node")
DEADLINE = 40.0  # a rotation waits for the 10 s floor; a failed first fetch is retried after 10 s

KEYS = [
    {"kid": "rsa-1", "alg": "RS256"},
    {"kid": "pss-1", "alg": "PS256"},
    {"kid": "p256-1", "alg": "ES256"},
    {"kid": "p384-1", "alg": "ES384"},
    {"kid": "p521-1", "alg": "ES512"},
    {"kid": "ed-1", "alg": "EdDSA"},
    {"kid": "rsa-2", "alg": "RS256"},   # published later: a rotation
    {"kid": "stray", "alg": "ES256"},   # never published
]
FIRST_SET = ["rsa-1", "pss-1", "p256-1", "p384-1", "p521-1", "ed-1"]


def jose_available() -> bool:
    return shutil.which("node") is not None and os.path.isdir(os.path.join(NODE_DIR, "node_modules", "jose"))


def make_keys_and_tokens():
    """Every key, and one token per key (user id = kid), plus two forgeries: a token naming
    rsa-1 but signed by another key, and one signed by rsa-1's key under PS256 (rsa-1 is
    published for RS256 only)."""
    now = int(time.time())
    claims = lambda user: {"user-id": user, "iat": now, "exp": now + 3600}
    tokens = [{"kid": k["kid"], "claims": claims(k["kid"])} for k in KEYS]
    tokens.append({"kid": "rsa-1", "claims": claims("forged"), "sign_with": "rsa-2"})
    tokens.append({"kid": "rsa-1", "claims": claims("wrong-alg"), "alg": "PS256"})
    out = subprocess.run(["node", os.path.join(NODE_DIR, "jose_keys.mjs")], input=json.dumps({"keys": KEYS, "tokens": tokens}),
                         capture_output=True, text=True, timeout=60, check=True)
    made = json.loads(out.stdout)
    by_kid = {t["kid"]: tok for t, tok in zip(tokens, made["tokens"]) if t["claims"]["user-id"] == t["kid"]}
    by_kid["forged"] = made["tokens"][-2]
    by_kid["wrong-alg"] = made["tokens"][-1]
    return made["jwks"], by_kid


class JwksEndpoint:
    """Serves GET /jwks.json from a thread; `answer` is (status, body bytes) and may be changed
    at any time; `stop()` takes the endpoint down (connections refused)."""

    def __init__(self, tls: LocalCA | None = None):
        self.answer = (404, b"")
        self.delay = 0.0  # seconds before each answer
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.requests += 1
                time.sleep(outer.delay)
                status, body = outer.answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls:
            self.httpd.socket = tls.server_context().wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.stopped = False

    def publish(self, jwks: dict, kids):
        self.answer = (200, json.dumps({"keys": [jwks[k] for k in kids]}).encode())

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()


class JwksBase(RealtimeTestCase):
    jwks: dict = {}
    tokens: dict = {}

    @classmethod
    def setUpClass(cls):
        # A failure, not a skip: scripts/install-deps.sh installs both, and a skipped interop test
        # would hide exactly what it exists for.
        if not jose_available():
            raise AssertionError("test_jwks needs node and tests/integration/node/node_modules/jose "
                                 "(scripts/install-deps.sh runs npm ci there)")
        cls.jwks, cls.tokens = make_keys_and_tokens()

    async def status_of(self, token: str):
        """101 (then closed) or the refusal's HTTP status."""
        uri = f"ws://{HOST}:{self.port}/ws?token={urllib.parse.quote(token, safe='')}"
        try:
            ws = await websockets.client.connect(uri, open_timeout=5, close_timeout=2)
        except websockets.exceptions.InvalidStatusCode as exc:
            return exc.status_code
        await ws.close()
        return 101

    async def until_accepted(self, token: str, before=None):
        """Retries the upgrade until it succeeds (deadline DEADLINE); `before()` runs before each
        try. Returns the number of refused tries."""
        refused = 0
        deadline = time.monotonic() + DEADLINE
        while True:
            if before:
                await before()
            status = await self.status_of(token)
            if status == 101:
                return refused
            self.assertEqual(status, 401)
            refused += 1
            if time.monotonic() > deadline:
                self.fail(f"token not accepted within {DEADLINE}s")
            await asyncio.sleep(0.25)

    async def refreshes(self, result: str) -> float:
        """realtime_jwks_refreshes_total{result=...}"""
        text = await asyncio.to_thread(self.server.metrics_text)
        m = re.search(r'(?m)^realtime_jwks_refreshes_total\{result="' + result + r'"\} (\S+)$', text)
        self.assertIsNotNone(m, text)
        return float(m.group(1))

    async def until_refreshes(self, result: str, at_least: float, poke: str | None = None):
        """Waits (deadline DEADLINE) for that many fetches with `result`; `poke` is a token sent
        meanwhile (an unknown kid asks for a fetch)."""
        deadline = time.monotonic() + DEADLINE
        while True:
            value = await self.refreshes(result)
            if value >= at_least:
                return value
            if time.monotonic() > deadline:
                self.fail(f"{value} fetches with result {result} after {DEADLINE}s")
            if poke:
                self.assertEqual(await self.status_of(poke), 401)
            await asyncio.sleep(0.25)


class JwksTest(JwksBase):

    def setUp(self):
        self.endpoint = JwksEndpoint()
        self.addCleanup(self.endpoint.stop)
        self.endpoint.publish(self.jwks, FIRST_SET)
        self.SERVER_ARGS = ["--jwt-jwks-url", self.endpoint.url]
        super().setUp()

    async def test_every_published_algorithm_is_accepted(self):
        for kid in FIRST_SET:
            with self.subTest(kid=kid):
                ws, connected = await self.connect(token=self.tokens[kid])
                self.assertEqual(connected["user-id"], kid)
                await ws.close()
        self.assertEqual(await self.metric("realtime_jwks_keys"), len(FIRST_SET))
        self.assertEqual(await self.refreshes("ok"), 1)
        self.assertIn(f"security: auth=JWKS ({self.endpoint.url})", self.server.log())

    async def test_unknown_kid_wrong_key_and_wrong_alg_are_refused(self):
        for name in ("stray", "forged", "wrong-alg"):
            with self.subTest(token=name):
                self.assertEqual(await self.status_of(self.tokens[name]), 401)
        self.assertEqual(await self.status_of(self.tokens["rsa-1"]), 101)

    async def test_refresh_token_checked_against_the_set(self):
        ws, _ = await self.connect(token=self.tokens["rsa-1"])
        await ws.send(json.dumps({"action": "refresh", "token": self.tokens["forged"], "ref": 1}))
        reply = await self.recv_json(ws)
        self.assertEqual(reply["type"], "error", reply)

    async def test_rotation_new_kid_accepted_after_the_fetch_it_causes_at_most_one_per_10s(self):
        self.assertEqual(await self.status_of(self.tokens["rsa-1"]), 101)
        self.endpoint.publish(self.jwks, FIRST_SET + ["rsa-2"])
        requests_before = self.endpoint.requests
        started = time.monotonic()
        await self.until_accepted(self.tokens["rsa-2"])
        elapsed = time.monotonic() - started
        # Many refused tries (every 0.25 s), yet at most one fetch per 10 s.
        fetches = self.endpoint.requests - requests_before
        self.assertGreaterEqual(fetches, 1)
        self.assertLessEqual(fetches, 1 + int(elapsed // 10) + 1)
        self.assertEqual(await self.status_of(self.tokens["rsa-1"]), 101)
        self.assertEqual(await self.metric("realtime_jwks_keys"), len(FIRST_SET) + 1)

    async def test_endpoint_down_keeps_the_last_good_set(self):
        await self.until_refreshes("ok", 1)  # the set this test keeps: the server is up before its first fetch ends
        self.endpoint.stop()
        await self.until_refreshes("error", 1, poke=self.tokens["stray"])
        for kid in ("rsa-1", "ed-1"):
            self.assertEqual(await self.status_of(self.tokens[kid]), 101, kid)
        self.assertEqual(await self.metric("realtime_jwks_keys"), len(FIRST_SET))
        self.assertIn("keeping the last good set", self.server.log())

    async def test_garbage_keeps_the_last_good_set(self):
        await self.until_refreshes("ok", 1)
        self.endpoint.answer = (200, b'{"keys": "not a list"')
        await self.until_refreshes("error", 1, poke=self.tokens["stray"])
        self.assertEqual(await self.status_of(self.tokens["p256-1"]), 101)
        # A well-formed document with no usable key is no better than garbage.
        self.endpoint.answer = (200, json.dumps({"keys": [dict(self.jwks["rsa-2"], use="enc")]}).encode())
        await self.until_refreshes("error", 2, poke=self.tokens["stray"])
        self.assertEqual(await self.status_of(self.tokens["p256-1"]), 101)
        self.assertEqual(await self.status_of(self.tokens["rsa-2"]), 401)
        self.assertIn("use is 'enc'", self.server.log())

    @no_server
    async def test_upgrade_during_the_first_fetch_waits_for_it(self):
        # The endpoint answers after 2 s: the server is up at once, and a token sent meanwhile is
        # held until the keys arrive instead of being refused.
        self.endpoint.delay = 2.0
        self.server = self.start_server(["--jwt-jwks-url", self.endpoint.url])
        self.assertEqual(await self.refreshes("ok"), 0)
        self.assertEqual(await self.status_of(self.tokens["ed-1"]), 101)
        self.assertEqual(await self.refreshes("ok"), 1)
        self.assertEqual(self.endpoint.requests, 1)

    @no_server
    async def test_starts_without_keys_refuses_then_accepts_once_the_endpoint_answers(self):
        self.endpoint.answer = (503, b"")
        self.server = self.start_server(["--jwt-jwks-url", self.endpoint.url])
        self.assertEqual(self.server.health()[0], 200)
        await self.until_refreshes("error", 1)
        self.assertEqual(await self.status_of(self.tokens["rsa-1"]), 401)
        self.assertEqual(await self.metric("realtime_jwks_keys"), 0)
        self.assertIn("no keys yet", self.server.log())
        self.endpoint.publish(self.jwks, FIRST_SET)
        await self.until_accepted(self.tokens["rsa-1"])


class JwksHttpsTest(JwksBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ca = LocalCA()

    @classmethod
    def tearDownClass(cls):
        cls.ca.remove()

    def setUp(self):
        self.endpoint = JwksEndpoint(tls=self.ca)
        self.addCleanup(self.endpoint.stop)
        self.endpoint.publish(self.jwks, FIRST_SET)
        self.server = None

    async def test_https_with_the_private_ca(self):
        self.server = self.start_server(["--jwt-jwks-url", self.endpoint.url, "--jwt-jwks-ca", self.ca.ca_file])
        await self.until_accepted(self.tokens["ed-1"])
        self.assertEqual(await self.refreshes("error"), 0)

    async def test_https_with_an_untrusted_certificate_gets_no_keys(self):
        # The system trust store does not know the test CA: the fetch fails, nothing is accepted.
        self.server = self.start_server(["--jwt-jwks-url", self.endpoint.url])
        await self.until_refreshes("error", 1)
        self.assertEqual(await self.status_of(self.tokens["ed-1"]), 401)
        self.assertIn("TLS handshake", self.server.log())

    async def test_https_host_name_is_checked(self):
        # The certificate names 127.0.0.1 and localhost only.
        other = LocalCA(hosts=("jwks.example",))
        self.addCleanup(other.remove)
        endpoint = JwksEndpoint(tls=other)
        self.addCleanup(endpoint.stop)
        endpoint.publish(self.jwks, FIRST_SET)
        self.server = self.start_server(["--jwt-jwks-url", endpoint.url, "--jwt-jwks-ca", other.ca_file])
        await self.until_refreshes("error", 1)
        self.assertEqual(await self.status_of(self.tokens["ed-1"]), 401)


class JwksConfigTest(unittest.TestCase):
    def run_server(self, *args):
        return subprocess.run([SERVER, "--port", "0", "--api-key", "k" * 32, *args], capture_output=True, text=True,
                              timeout=10, stdin=subprocess.DEVNULL)

    def test_one_key_source_only_and_valid_urls(self):
        url = f"http://127.0.0.1:{free_port()}/jwks.json"
        cases = [
            (["--jwt-jwks-url", url, "--jwt-secret", "s" * 32], "only one of"),
            (["--jwt-jwks-url", "ftp://x/jwks"], "--jwt-jwks-url"),
            (["--jwt-jwks-url", url, "--jwt-jwks-ca", "/nonexistent.pem"], "only used with an https"),
            (["--jwt-secret", "s" * 32, "--jwt-jwks-ca", "/nonexistent.pem"], "only used with --jwt-jwks-url"),
            (["--jwt-jwks-url", "https://127.0.0.1:1/jwks.json", "--jwt-jwks-ca", "/nonexistent.pem"], "CA file"),
        ]
        for args, text in cases:
            with self.subTest(args=args):
                out = self.run_server(*args)
                self.assertEqual(out.returncode, 2, out)
                self.assertIn(text, out.stderr)


if __name__ == "__main__":
    unittest.main()
