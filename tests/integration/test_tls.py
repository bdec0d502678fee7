"""TLS (--tls-cert, --tls-key): wss:// and https:// on the one port, TLS 1.2+, ALPN http/1.1,
the handshake inside --handshake-timeout, the files re-read on SIGHUP without dropping open
connections, and startup refusing unusable files (docs/operations.md "TLS")."""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import websockets.client

from rt_harness import (DEFAULT_TIMEOUT, HOST, SERVER, RealtimeTestCase, no_server, random_secret,
                        server_binary_available)
from tls_certs import TestCA, serial_of, stray_key, write


class TlsTestCase(RealtimeTestCase):

    @classmethod
    def setUpClass(cls):
        cls.ca = TestCA()
        cls.cert1, cls.key1 = cls.ca.issue("realtime-test-1", 1001)
        cls.cert2, cls.key2 = cls.ca.issue("realtime-test-2", 1002)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="realtime-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ca_file = os.path.join(self.dir, "ca.pem")
        self.cert_file = os.path.join(self.dir, "cert.pem")
        self.key_file = os.path.join(self.dir, "key.pem")
        write(self.ca_file, self.ca.pem())
        write(self.cert_file, self.cert1)
        write(self.key_file, self.key1)
        super().setUp()

    def client_context(self, **versions) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        for attr, value in versions.items():
            setattr(ctx, attr, value)
        return ctx

    def start_tls(self, *args, env=None):
        flags = [] if env else ["--tls-cert", self.cert_file, "--tls-key", self.key_file]
        self.server = self.start_server([*flags, *args], ssl_context=self.client_context(), env=env)
        return self.server

    def tls_socket(self, ctx: ssl.SSLContext | None = None) -> ssl.SSLSocket:
        raw = socket.create_connection((HOST, self.port), timeout=DEFAULT_TIMEOUT)
        return (ctx or self.client_context()).wrap_socket(raw, server_hostname=HOST)

    def served_serial(self) -> int:
        with self.tls_socket() as s:
            return serial_of(s.getpeercert(binary_form=True))

    async def wait_for_log(self, pattern: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.server.log())
            if m:
                return m.group(0)
            await asyncio.sleep(0.05)
        self.fail(f"no log line matching {pattern!r}")

    async def publish_reaches(self, ws, topic: str, text: str):
        data = await self.api_ok("POST", "/api/publish", {"topic": topic, "message": {"type": "note", "text": text}})
        self.assertEqual(data.get("delivered"), 1, data)
        msg = await self.recv_json(ws)
        self.assertEqual((msg.get("type"), msg.get("text")), ("note", text), msg)


class TlsServing(TlsTestCase):

    @no_server
    async def test_wss_client_receives_what_an_https_publish_sends(self):
        self.start_tls()
        ws, connected = await self.connect("alice")
        self.assertEqual(connected["type"], "connected")
        reply = await self.command(ws, {"action": "subscribe", "topic": "news", "ref": "s"})
        self.assertEqual(reply.get("type"), "subscribed", reply)
        await self.publish_reaches(ws, "news", "over tls")
        await self.assert_ping_works(ws)

    @no_server
    async def test_large_messages_cross_both_ways(self):
        # Frames past one TLS record and past the 64 KiB write batch, and a client frame that
        # arrives in several records.
        self.start_tls("--max-message-bytes", "200000", "--publish-patterns", "big:**")
        ws, _ = await self.connect("bob")
        await self.command(ws, {"action": "subscribe", "topic": "big:a"})
        text = "x" * 150000
        data = await self.api_ok("POST", "/api/publish", {"topic": "big:a", "message": {"type": "blob", "text": text}})
        self.assertEqual(data.get("delivered"), 1)
        msg = await self.recv_json(ws)
        self.assertEqual(len(msg.get("text", "")), len(text))
        reply = await self.command(ws, {"action": "publish", "topic": "big:a", "ref": "p",
                                        "message": {"type": "blob", "text": "y" * 100000}})
        while reply.get("type") == "blob":  # our own publish may come before its reply
            self.assertEqual(len(reply["text"]), 100000)
            reply = await self.recv_json(ws)
        self.assertEqual(reply.get("type"), "published", reply)

    @no_server
    async def test_health_and_metrics_over_https(self):
        self.start_tls()
        status, body = await asyncio.to_thread(self.server.health)
        self.assertEqual((status, body.get("status")), (200, "healthy"))
        text = await asyncio.to_thread(self.server.metrics_text)
        self.assertIn("realtime_connections", text)

    @no_server
    async def test_env_variables_turn_tls_on(self):
        self.start_tls(env={"REALTIME_TLS_CERT": self.cert_file, "REALTIME_TLS_KEY": self.key_file})
        self.assertEqual(await asyncio.to_thread(self.served_serial), 1001)
        await self.wait_for_log(r"security: .* tls=on")

    @no_server
    async def test_config_file_turns_tls_on(self):
        conf = os.path.join(self.dir, "realtime.toml")
        with open(conf, "w") as f:
            f.write(f'tls-cert = "{self.cert_file}"\ntls-key = "{self.key_file}"\n')
        self.start_tls("--config", conf, env={"UNUSED": "1"})
        self.assertEqual(await asyncio.to_thread(self.served_serial), 1001)

    @no_server
    async def test_plain_http_to_the_tls_port_gets_no_answer(self):
        self.start_tls()

        def plain_request() -> bytes:
            with socket.create_connection((HOST, self.port), timeout=DEFAULT_TIMEOUT) as s:
                s.sendall(b"GET /health/realtime HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while True:
                    try:
                        chunk = s.recv(4096)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    data += chunk
                return data

        data = await asyncio.to_thread(plain_request)
        self.assertNotIn(b"HTTP/1.1 200", data)
        self.assertNotIn(b"healthy", data)
        status, _ = await asyncio.to_thread(self.server.health)  # and the server serves on
        self.assertEqual(status, 200)

    @no_server
    async def test_tls_1_1_is_refused_and_1_2_accepted(self):
        self.start_tls()
        old = self.client_context(minimum_version=ssl.TLSVersion.TLSv1_1, maximum_version=ssl.TLSVersion.TLSv1_1)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
        with self.assertRaises(ssl.SSLError) as refused:
            await asyncio.to_thread(lambda: self.tls_socket(old).close())
        # The server's alert, not a client that would not try.
        self.assertIn("PROTOCOL_VERSION", str(refused.exception).upper())
        tls12 = self.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
        with await asyncio.to_thread(self.tls_socket, tls12) as s:
            self.assertEqual(s.version(), "TLSv1.2")
        with await asyncio.to_thread(self.tls_socket) as s:
            self.assertEqual(s.version(), "TLSv1.3")

    @no_server
    async def test_alpn_answers_http_1_1(self):
        self.start_tls()
        ctx = self.client_context()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with await asyncio.to_thread(self.tls_socket, ctx) as s:
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")

    @no_server
    async def test_a_silent_client_is_closed_at_the_handshake_timeout(self):
        self.start_tls("--handshake-timeout", "1")
        before = await self.metric("realtime_handshake_timeouts_total") or 0

        def silent() -> bool:
            with socket.create_connection((HOST, self.port), timeout=8) as s:
                try:
                    return s.recv(1) == b""
                except ConnectionResetError:
                    return True
                except socket.timeout:
                    return False

        self.assertTrue(await asyncio.to_thread(silent), "the server kept a silent TLS connection open")
        # The peer sees the close before the server's read handler counts the timeout (the
        # stream's timer closes the socket first), and the metrics may be read on another loop.
        after = await self.eventually(lambda: self.metric("realtime_handshake_timeouts_total"),
                                      lambda v: (v or 0) >= before + 1, what="the handshake timeout counted")
        self.assertEqual(after, before + 1)

    @no_server
    async def test_connection_limits_apply_over_tls(self):
        self.start_tls("--max-connections-per-user", "1")
        await self.connect("carol")
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as refused:
            uri = f"wss://{HOST}:{self.port}/ws?token={urllib.parse.quote(self.token('carol'), safe='')}"
            await websockets.client.connect(uri, ssl=self.client_context(), open_timeout=DEFAULT_TIMEOUT)
        self.assertEqual(refused.exception.status_code, 429)


class TlsReload(TlsTestCase):

    @no_server
    async def test_sighup_serves_the_new_certificate_and_keeps_open_connections(self):
        self.start_tls()
        ws, _ = await self.connect("dave")
        await self.command(ws, {"action": "subscribe", "topic": "t"})
        self.assertEqual(await asyncio.to_thread(self.served_serial), 1001)
        write(self.cert_file, self.cert2)
        write(self.key_file, self.key2)
        self.server.signal(signal.SIGHUP)
        await self.wait_for_log(r"TLS: reloaded .*CN\s*=\s*realtime-test-2")
        self.assertEqual(await asyncio.to_thread(self.served_serial), 1002)
        # The connection opened before the reload sends and receives.
        await self.assert_ping_works(ws, "after-reload")
        await self.publish_reaches(ws, "t", "still here")
        ws2, _ = await self.connect("erin")
        await self.assert_ping_works(ws2)

    @no_server
    async def test_sighup_with_a_broken_file_keeps_the_old_certificate(self):
        self.start_tls()
        ws, _ = await self.connect("frank")
        write(self.cert_file, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        self.server.signal(signal.SIGHUP)
        await self.wait_for_log(r"error TLS: reload failed, still serving the previous certificate: --tls-cert")
        self.assertEqual(await asyncio.to_thread(self.served_serial), 1001)
        # A key that is not the certificate's is refused the same way.
        write(self.cert_file, self.cert2)
        write(self.key_file, stray_key())
        self.server.signal(signal.SIGHUP)
        await self.wait_for_log(r"reload failed, .*--tls-key: .* is not the private key")
        self.assertEqual(await asyncio.to_thread(self.served_serial), 1001)
        await self.assert_ping_works(ws)
        self.assertTrue(self.server.running())

    async def test_sighup_without_tls_changes_nothing(self):
        self.server.signal(signal.SIGHUP)
        await self.wait_for_log(r"received SIGHUP: no TLS files to re-read")
        self.assertTrue(self.server.running())
        status, _ = await asyncio.to_thread(self.server.health)
        self.assertEqual(status, 200)


@unittest.skipUnless(server_binary_available(), "server binary not found")
class TlsStartup(unittest.TestCase):
    """Unusable files stop the server at startup with status 2 and a message naming the option."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="realtime-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        ca = TestCA()
        cert, key = ca.issue("realtime-test", 7)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        write(self.cert, cert)
        write(self.key, key)

    def run_server(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run([SERVER, "--port", "0", "--jwt-secret", random_secret(), "--api-key", random_secret(),
                               *args], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)

    def assert_refused(self, result, *fragments):
        self.assertEqual(result.returncode, 2, result.stderr + result.stdout)
        for f in fragments:
            self.assertIn(f, result.stderr)

    def test_a_key_that_does_not_match_the_certificate(self):
        other = os.path.join(self.dir, "other.pem")
        write(other, stray_key())
        self.assert_refused(self.run_server("--tls-cert", self.cert, "--tls-key", other),
                            "--tls-key:", "is not the private key of the certificate")

    def test_a_missing_file(self):
        self.assert_refused(self.run_server("--tls-cert", os.path.join(self.dir, "nope.pem"), "--tls-key", self.key),
                            "--tls-cert: cannot read")
        self.assert_refused(self.run_server("--tls-cert", self.cert, "--tls-key", os.path.join(self.dir, "nope.pem")),
                            "--tls-key: cannot read")

    def test_a_file_that_is_not_pem(self):
        junk = os.path.join(self.dir, "junk.pem")
        write(junk, b"hello\n")
        self.assert_refused(self.run_server("--tls-cert", junk, "--tls-key", self.key), "--tls-cert:", "not a PEM")
        self.assert_refused(self.run_server("--tls-cert", self.cert, "--tls-key", junk), "--tls-key:", "not an unencrypted PEM")

    def test_one_file_without_the_other(self):
        self.assert_refused(self.run_server("--tls-cert", self.cert), "--tls-key: --tls-cert was given without")
        self.assert_refused(self.run_server("--tls-key", self.key), "--tls-cert: --tls-key was given without")


if __name__ == "__main__":
    unittest.main()
