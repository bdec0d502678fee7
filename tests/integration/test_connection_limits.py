"""Connection limits (--max-connections, --max-connections-per-user), the handshake timeout,
and how refusals are counted and logged (docs/protocol.md "Connection limits")."""

import asyncio
import base64
import os
import re
import signal
import socket
import time
import unittest
import urllib.parse

from rt_harness import HOST, RealtimeTestCase, parse_body, raw_http_exchange, server_args


def upgrade_head(token: str, path: str = "/ws") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path}?token={urllib.parse.quote(token, safe='')} HTTP/1.1\r\n"
            f"Host: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def closed_within(sock: socket.socket, deadline_s: float) -> tuple[bool, float]:
    """Read until the server ends the connection; (closed, seconds taken)."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < deadline_s:
        try:
            if not sock.recv(4096):
                return True, time.monotonic() - start
        except socket.timeout:
            continue
        except OSError:  # reset: closed too
            return True, time.monotonic() - start
    return False, time.monotonic() - start


class LimitsTestCase(RealtimeTestCase):

    async def upgrade_refusal(self, token: str):
        """(status, JSON body) of an upgrade expected to be refused before the 101."""
        status, data = await asyncio.to_thread(raw_http_exchange, self.port, upgrade_head(token))
        head_end = data.find(b"\r\n\r\n")
        return status, parse_body(data[head_end + 4:]) if head_end >= 0 else None

    def refused_count(self, reason: str) -> float:
        text = self.server.metrics_text()
        m = re.search(r'(?m)^realtime_upgrades_refused_total\{reason="%s"\} (\S+)$' % re.escape(reason), text)
        self.assertIsNotNone(m, f"no realtime_upgrades_refused_total sample for {reason}")
        return float(m.group(1))

    async def wait_for_log(self, pattern: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.server.log())
            if m:
                return m.group(0)
            await asyncio.sleep(0.05)
        self.fail(f"no log line matching {pattern!r}:\n{self.server.log()}")

    async def wait_connections(self, n: int, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.metric("realtime_connections") == n:
                return
            await asyncio.sleep(0.05)
        self.fail(f"realtime_connections did not reach {n}")


class MaxConnectionsTest(LimitsTestCase):
    SERVER_ARGS = ["--max-connections", "3"]

    async def test_past_the_limit_an_upgrade_gets_503_and_a_freed_slot_is_reused(self):
        clients = [(await self.connect(user_id=f"u{i}"))[0] for i in range(3)]
        token = self.token("u-late")
        status, body = await self.upgrade_refusal(token)
        self.assertEqual(status, 503)
        self.assertEqual(body, {"error": "too many connections"})
        self.assertEqual(self.refused_count("max-connections"), 1)
        self.assertEqual(await self.metric("realtime_connections"), 3)

        await clients[0].close()
        await self.wait_connections(2)
        ws, hello = await self.connect(user_id="u-late")
        self.assertEqual(hello["type"], "connected")
        status, _ = await self.upgrade_refusal(self.token("u-later"))
        self.assertEqual(status, 503)

        line = await self.wait_for_log(r"(?m)^.* info upgrade refused \(max-connections\): 503 /ws from 127\.0\.0\.1:\d+.*$")
        self.assertNotIn(token, self.server.log())
        self.assertNotIn("token=", line)

    async def test_refused_upgrades_do_not_take_slots(self):
        for _ in range(5):
            status, _ = await self.upgrade_refusal("not-a-token")
            self.assertEqual(status, 401)
        for i in range(3):
            await self.connect(user_id=f"u{i}")
        self.assertEqual(self.refused_count("unauthorized"), 5)
        self.assertGreaterEqual(await self.metric("realtime_auth_failures_total"), 5)


class PerUserLimitTest(LimitsTestCase):
    SERVER_ARGS = ["--max-connections-per-user", "2"]  # the harness runs two loops

    async def test_past_the_per_user_limit_429_while_other_users_connect(self):
        a1, _ = await self.connect(user_id="alice")
        await self.connect(user_id="alice")
        token = self.token("alice")
        status, body = await self.upgrade_refusal(token)
        self.assertEqual(status, 429)
        self.assertEqual(body, {"error": "too many connections for this user"})
        await self.connect(user_id="bob")  # other users still connect, up to their own limit
        await self.connect(user_id="bob")
        self.assertEqual(self.refused_count("max-connections-per-user"), 1)

        await a1.close()
        await self.wait_connections(3)
        await self.connect(user_id="alice")  # alice's freed slot is hers again

        await self.wait_for_log(r"info upgrade refused \(max-connections-per-user\): 429 /ws from 127\.0\.0\.1:\d+; user 'alice'")
        self.assertNotIn(token, self.server.log())

    async def test_concurrent_upgrades_of_one_user_admit_exactly_the_limit(self):
        # Several loops take the same user's upgrades at once: the count must not race.
        results = await asyncio.gather(*(self.upgrade_status("carol") for _ in range(8)))
        self.assertEqual(sorted(results).count(101), 2, results)
        self.assertEqual(results.count(429), 6, results)

    async def upgrade_status(self, user: str) -> int | None:
        def go():
            sock = socket.create_connection((HOST, self.port), timeout=5)
            self.addCleanup(sock.close)
            sock.sendall(upgrade_head(self.token(user)))
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            m = re.match(rb"HTTP/1\.1 (\d{3})", data)
            return int(m.group(1)) if m else None
        return await asyncio.to_thread(go)


class QueuedConnectionsTest(LimitsTestCase):
    SERVER_ARGS = ["--max-connections", "250"]

    async def test_connections_waiting_in_the_listen_queue_are_all_taken_and_the_limit_holds(self):
        # The server is stopped while 300 clients connect and send their upgrade: when it goes on,
        # its acceptors find them all queued and take them in batches. Each one is answered, and
        # --max-connections still admits exactly 250.
        def go():
            socks = []
            self.server.signal(signal.SIGSTOP)
            try:
                for i in range(300):
                    sock = socket.create_connection((HOST, self.port), timeout=5)
                    socks.append(sock)
                    sock.sendall(upgrade_head(self.token(f"q{i}")))
            finally:
                self.server.signal(signal.SIGCONT)
            statuses = []
            for sock in socks:
                sock.settimeout(10)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                m = re.match(rb"HTTP/1\.1 (\d{3})", data)
                statuses.append(int(m.group(1)) if m else None)
            return socks, statuses

        socks, statuses = await asyncio.to_thread(go)
        try:
            self.assertEqual(statuses.count(101), 250, statuses)
            self.assertEqual(statuses.count(503), 50, statuses)
            await self.wait_connections(250)
            self.assertEqual(self.refused_count("max-connections"), 50)
            self.assertEqual(await self.metric("realtime_accept_errors_total"), 0)
        finally:
            for sock in socks:
                sock.close()
        await self.wait_connections(0)


class HandshakeTimeoutTest(LimitsTestCase):
    SERVER_ARGS = ["--handshake-timeout", "1"]
    MARGIN = 3.0

    async def test_a_request_trickled_a_byte_at_a_time_is_closed(self):
        head = upgrade_head(self.token())

        def trickle():
            sock = socket.create_connection((HOST, self.port), timeout=5)
            start = time.monotonic()
            try:
                for b in head[:-2]:  # never complete
                    if time.monotonic() - start > 1 + self.MARGIN:
                        return False
                    try:
                        sock.sendall(bytes([b]))
                    except OSError:
                        return True  # the server closed the socket
                    sock.settimeout(0.2)
                    try:
                        if not sock.recv(4096):
                            return True
                    except socket.timeout:
                        pass
                    except OSError:
                        return True
                return False
            finally:
                sock.close()

        self.assertTrue(await asyncio.to_thread(trickle), "a trickled request kept the connection open")
        # The peer sees the close before the server's read handler counts the timeout (the
        # stream's timer closes the socket first), and the metrics may be read on another loop.
        await self.eventually(lambda: self.metric("realtime_handshake_timeouts_total"), lambda v: (v or 0) >= 1,
                              what="the handshake timeout counted")

    async def test_a_silent_connection_is_closed(self):
        def silent():
            sock = socket.create_connection((HOST, self.port), timeout=5)
            try:
                return closed_within(sock, 1 + self.MARGIN)
            finally:
                sock.close()

        closed, _ = await asyncio.to_thread(silent)
        self.assertTrue(closed, "a connection that sent nothing stayed open")
        # The peer sees the close before the server's read handler counts the timeout (the
        # stream's timer closes the socket first), and the metrics may be read on another loop.
        counted = await self.eventually(lambda: self.metric("realtime_handshake_timeouts_total"),
                                        lambda v: (v or 0) >= 1, what="the handshake timeout counted")
        self.assertEqual(counted, 1)

    async def test_a_prompt_client_still_connects(self):
        ws, _ = await self.connect()
        await asyncio.sleep(1.5)  # past the handshake timeout: an upgraded connection is not affected
        await self.assert_ping_works(ws)


class RefusalLogTest(LimitsTestCase):

    async def test_refused_api_calls_and_upgrades_are_logged_without_secrets(self):
        status, _ = await self.api("GET", "/api/connections?key=abc", key="wrong-key-0123456789")
        self.assertEqual(status, 401)
        await self.wait_for_log(r"info API call refused \(unauthorized\): 401 /api/connections from 127\.0\.0\.1:\d+; wrong API key")
        bad = self.token("mallory") + "x"
        status, _ = await self.upgrade_refusal(bad)
        self.assertEqual(status, 401)
        await self.wait_for_log(r"info upgrade refused \(unauthorized\): 401 /ws from 127\.0\.0\.1:\d+; bad token \(")
        log = self.server.log()
        self.assertNotIn(bad, log)
        self.assertNotIn("wrong-key-0123456789", log)
        self.assertNotIn(self.server.api_key, log.split("security:")[-1])
        self.assertNotIn("key=abc", log)

    async def test_a_flood_of_refusals_is_summarised(self):
        for _ in range(20):
            status, _ = await self.upgrade_refusal("nope")
            self.assertEqual(status, 401)
        lines = re.findall(r"upgrade refused \(unauthorized\)", self.server.log())
        self.assertLess(len(lines), 20)
        await self.wait_for_log(r"upgrade refused \(unauthorized\):.*\.\.\. and \d+ more refused", timeout=4)

    async def test_startup_logs_the_security_settings_without_secrets(self):
        line = await self.wait_for_log(r"info security: .*")
        for part in ("auth=HMAC", "allowed-origins=any", "publish-patterns=none", "max-connections=unlimited",
                     "handshake-timeout=10s", "idle-timeout=60s", "max-message-bytes=65536", "cluster=off"):
            self.assertIn(part, line)
        self.assertNotIn(self.server.jwt_secret, self.server.log())
        self.assertNotIn(self.server.api_key, self.server.log())


if __name__ == "__main__":
    unittest.main()
