"""The GET /ws handshake, JWT claims and the connected frame (docs/protocol.md), the health endpoint,
the startup refusal of short HMAC secrets and the `token` subcommand."""

import asyncio
import re
import subprocess
import time
import unittest
import urllib.parse

import websockets.exceptions

from rt_harness import (HOST, SERVER, UUID4_RE, RealtimeTestCase, free_port, http_request,
                        make_jwt, no_server, parse_body, random_secret, server_args,
                        server_binary_available, verify_jwt)


def upgrade_headers(extra=None):
    h = {"Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
    if extra:
        h.update(extra)
    return h


class HandshakeAuthTest(RealtimeTestCase):

    def upgrade(self, token=None, headers=None):
        """Raw upgrade request; returns (status, parsed body)."""
        path = "/ws" if token is None else "/ws?token=" + urllib.parse.quote(token, safe="")
        status, _, data = http_request(self.port, "GET", path, headers=upgrade_headers(headers))
        return status, parse_body(data)

    def bad_tokens(self):
        now = int(time.time())
        secret = self.server.jwt_secret
        good_claims = {"user-id": "42", "roles": ["admin"], "exp": now + 3600}
        valid = make_jwt(good_claims, secret)
        h, p, s = valid.split(".")
        tampered_payload = make_jwt({"user-id": "1", "roles": ["admin"], "exp": now + 3600}, secret).split(".")[1]
        return {
            "malformed-garbage": "not-a-jwt",
            "malformed-two-parts": h + "." + p,
            "malformed-bad-base64": "!!!." + p + "." + s,
            "malformed-json-header": "eyJub3QganNvbg." + p + "." + s,
            "bad-signature-other-secret": make_jwt(good_claims, random_secret(48)),
            "bad-signature-tampered-payload": h + "." + tampered_payload + "." + s,
            "bad-signature-empty": h + "." + p + ".",
            "expired": make_jwt({"user-id": "42", "exp": now - 3600}, secret),
            "nbf-in-future": make_jwt({"user-id": "42", "exp": now + 7200, "nbf": now + 3600}, secret),
            "alg-none": make_jwt(good_claims, secret, alg="none", signature=""),
            "alg-none-with-signature": make_jwt(good_claims, secret, alg="none", signature=s),
            "alg-RS256-hmac-signed": make_jwt(good_claims, secret, alg="RS256"),
            "no-user-id": make_jwt({"roles": ["admin"], "exp": now + 3600}, secret),
        }

    def test_missing_token_is_401_unauthorized(self):
        status, body = self.upgrade()
        self.assertEqual(status, 401)
        self.assertEqual(body, {"error": "Unauthorized"})

    def test_invalid_tokens_are_401_unauthorized_without_upgrade(self):
        for name, token in self.bad_tokens().items():
            with self.subTest(token=name):
                status, body = self.upgrade(token)
                self.assertEqual(status, 401, f"{name}: {body!r}")
                self.assertEqual(body, {"error": "Unauthorized"}, name)

    def test_invalid_token_in_authorization_header_is_401(self):
        for name in ("bad-signature-other-secret", "expired", "alg-none"):
            token = self.bad_tokens()[name]
            with self.subTest(token=name):
                status, body = self.upgrade(headers={"Authorization": f"Bearer {token}"})
                self.assertEqual(status, 401, f"{name}: {body!r}")
                self.assertEqual(body, {"error": "Unauthorized"})

    async def test_websocket_client_sees_401_for_bad_token(self):
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as ctx:
            await self.connect(token=self.bad_tokens()["expired"])
        self.assertEqual(ctx.exception.status_code, 401)

    async def test_auth_failures_are_counted_in_metrics(self):
        before = await self.metric("realtime_auth_failures_total")
        self.assertIsNotNone(before, "realtime_auth_failures_total missing from /metrics")
        self.upgrade(self.bad_tokens()["expired"])
        self.upgrade()
        after = await self.metric("realtime_auth_failures_total")
        self.assertGreaterEqual(after, before + 2)

    async def test_valid_token_in_query_connects(self):
        ws, connected = await self.connect(user_id="42", roles=["admin"])
        self.assertEqual(connected["user-id"], "42")
        await self.assert_ping_works(ws)

    async def test_token_in_authorization_bearer_header_connects(self):
        ws, connected = await self.connect(user_id="42", roles=["admin"], via_header=True)
        self.assertEqual(connected["user-id"], "42")
        self.assertEqual(connected["roles"], ["admin"])
        await self.assert_ping_works(ws)

    def test_plain_get_without_upgrade_is_400(self):
        token = self.token()
        status, _, data = http_request(self.port, "GET", "/ws?token=" + urllib.parse.quote(token))
        self.assertEqual(status, 400)
        self.assertEqual(parse_body(data), {"error": "Not a WebSocket request"})

    async def test_rejected_handshakes_do_not_count_as_connections(self):
        for token in self.bad_tokens().values():
            self.upgrade(token)
        status, health = self.server.health()
        self.assertEqual(status, 200)
        self.assertEqual(health["active-connections"], 0)


class ConnectedFrameTest(RealtimeTestCase):

    async def test_connected_frame_fields(self):
        ws, c = await self.connect(user_id="42", roles=["admin"])
        self.assertEqual(c["type"], "connected")
        self.assertIsInstance(c["connection-id"], str)
        self.assertRegex(c["connection-id"], UUID4_RE)
        self.assertEqual(c["user-id"], "42")
        self.assertEqual(c["roles"], ["admin"])
        self.assert_timestamp(c["timestamp"])
        self.assertGreaterEqual(set(c), {"type", "connection-id", "user-id", "roles", "timestamp"})

    async def test_connection_ids_are_unique(self):
        # Ids come from a per-thread pool of 512 random bytes (32 ids): 80 connections refill
        # the pool of every event loop at least once.
        ids = set()
        for _ in range(80):
            ws, c = await self.connect()
            self.assertRegex(c["connection-id"], UUID4_RE)
            ids.add(c["connection-id"])
            await ws.close()
        self.assertEqual(len(ids), 80)

    async def test_numeric_sub_becomes_string_user_id(self):
        now = int(time.time())
        _, c = await self.connect(claims={"sub": 7, "exp": now + 3600})
        self.assertEqual(c["user-id"], "7")
        self.assertIsInstance(c["user-id"], str)

    async def test_string_sub_is_user_id(self):
        now = int(time.time())
        _, c = await self.connect(claims={"sub": "alice", "exp": now + 3600})
        self.assertEqual(c["user-id"], "alice")

    async def test_numeric_user_id_claim_becomes_string(self):
        now = int(time.time())
        _, c = await self.connect(claims={"user-id": 42, "exp": now + 3600})
        self.assertEqual(c["user-id"], "42")

    async def test_user_id_claim_wins_over_sub(self):
        now = int(time.time())
        _, c = await self.connect(claims={"user-id": "42", "sub": "99", "exp": now + 3600})
        self.assertEqual(c["user-id"], "42")

    async def test_roles_from_single_role_claim(self):
        now = int(time.time())
        _, c = await self.connect(claims={"sub": 7, "role": "admin", "exp": now + 3600})
        self.assertEqual(c["roles"], ["admin"])

    async def test_roles_array_wins_over_role(self):
        now = int(time.time())
        _, c = await self.connect(claims={"sub": "7", "roles": ["a", "b"], "role": "c", "exp": now + 3600})
        self.assertEqual(c["roles"], ["a", "b"])

    async def test_no_roles_claim_means_empty_roles(self):
        now = int(time.time())
        _, c = await self.connect(claims={"user-id": "42", "exp": now + 3600})
        self.assertEqual(c["roles"], [])

    async def test_role_claim_grants_role_topic(self):
        # The single `role` claim is a real role, not only a label in the connected frame.
        now = int(time.time())
        ws, _ = await self.connect(claims={"sub": 7, "role": "admin", "exp": now + 3600})
        reply = await self.command(ws, {"action": "subscribe", "topic": "role:admin"})
        self.assertEqual(reply["type"], "subscribed", reply)

    async def test_numeric_sub_owns_its_user_topic(self):
        now = int(time.time())
        ws, _ = await self.connect(claims={"sub": 7, "exp": now + 3600})
        reply = await self.command(ws, {"action": "subscribe", "topic": "user:7"})
        self.assertEqual(reply["type"], "subscribed", reply)


class OriginTest(RealtimeTestCase):
    SERVER_ARGS = ["--allowed-origins", "http://good.example"]

    def test_foreign_origin_is_403(self):
        token = self.token()
        status, _, _ = http_request(self.port, "GET", "/ws?token=" + urllib.parse.quote(token),
                                    headers=upgrade_headers({"Origin": "http://evil.example"}))
        self.assertEqual(status, 403)

    async def test_foreign_origin_rejected_for_websocket_client(self):
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as ctx:
            await self.connect(origin="http://evil.example")
        self.assertEqual(ctx.exception.status_code, 403)

    async def test_allowed_origin_connects(self):
        ws, c = await self.connect(origin="http://good.example")
        self.assertEqual(c["type"], "connected")
        await self.assert_ping_works(ws)

    @server_args("--allowed-origins", "http://good.example,https://other.example")
    async def test_every_origin_of_the_list_is_allowed(self):
        ws1, _ = await self.connect(origin="http://good.example")
        ws2, _ = await self.connect(origin="https://other.example")
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as ctx:
            await self.connect(origin="https://evil.example")
        self.assertEqual(ctx.exception.status_code, 403)


class HealthTest(RealtimeTestCase):

    async def test_health_shape_and_active_connections(self):
        status, body = self.server.health()
        self.assertEqual(status, 200)
        self.assertEqual(body, {"status": "healthy", "active-connections": 0, "service": "realtime"})
        ws1, _ = await self.connect(user_id="1")
        ws2, _ = await self.connect(user_id="2")
        health = lambda: asyncio.to_thread(self.server.health)
        await self.eventually(health, lambda r: r[1].get("active-connections") == 2,
                              what="active-connections == 2")
        await ws1.close()
        await self.eventually(health, lambda r: r[1].get("active-connections") == 1,
                              what="active-connections == 1 after a close")
        status, body = self.server.health()
        self.assertEqual(body["status"], "healthy")
        self.assertEqual(body["service"], "realtime")

    def test_health_needs_no_api_key(self):
        status, body = self.server.health()
        self.assertEqual(status, 200)
        status, body = self.server.get("/health/realtime", headers={"Authorization": "Bearer wrong"})
        self.assertEqual(status, 200)


class StartupAndTokenCommandTest(RealtimeTestCase):

    def setUp(self):
        super().setUp()
        if not server_binary_available():
            raise unittest.SkipTest(f"server binary not found: {SERVER}")

    @no_server
    def test_short_hmac_secret_refused_at_startup(self):
        port = free_port()
        try:
            proc = subprocess.run(
                [SERVER, "--host", HOST, "--port", str(port), "--jwt-secret", "0123456789",
                 "--api-key", "k" * 32, "--threads", "2"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        except subprocess.TimeoutExpired as exc:
            self.fail(f"server with a 10-byte secret still running after 10s; output={exc.stdout!r} {exc.stderr!r}")
        stderr = proc.stderr.decode("utf-8", "replace")
        self.assertNotEqual(proc.returncode, 0,
                            f"server accepted a 10-byte secret; stdout={proc.stdout!r}")
        self.assertIn("32", stderr, f"stderr should explain the 32-byte minimum: {stderr!r}")

    @no_server
    async def test_token_subcommand_prints_verifiable_hs256_token(self):
        secret = random_secret(48)
        proc = subprocess.run(
            [SERVER, "token", "--secret", secret, "--user-id", "42", "--roles", "admin,user",
             "--ttl", "3600"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        out = proc.stdout.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, f"stdout={out!r} stderr={proc.stderr!r}")
        tokens = re.findall(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", out)
        self.assertTrue(tokens, f"no JWT in output {out!r}")
        token = tokens[-1]
        header, claims = verify_jwt(token, secret)  # raises on a bad signature
        self.assertEqual(header["alg"], "HS256")
        self.assertEqual(claims.get("user-id", claims.get("sub")), "42", claims)
        self.assertEqual(claims.get("roles"), ["admin", "user"], claims)
        self.assertIsInstance(claims.get("exp"), int, claims)
        self.assertAlmostEqual(claims["exp"] - time.time(), 3600, delta=120)
        with self.assertRaises(ValueError):
            verify_jwt(token, random_secret(48))

        # and a server with the same secret accepts it
        self.server = self.start_server(jwt_secret=secret)
        ws, c = await self.connect(token=token)
        self.assertEqual(c["user-id"], "42")
        self.assertEqual(c["roles"], ["admin", "user"])


if __name__ == "__main__":
    unittest.main()
