"""boundary_realtime.RealtimeClient against the real realtime-server binary.

Run from the repository root:
    /usr/bin/python3 -m unittest discover -s clients/python/tests -v

Every test gets its own server on a free port (tests/realtime_server.py). Every wait has a
deadline (DEADLINE seconds unless a test says otherwise), so a broken feature fails a test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

import websockets.client
import websockets.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # clients/python: the package under test
sys.path.insert(0, HERE)

from boundary_realtime import RealtimeClient, RealtimeError, backoff_ceiling, backoff_delay  # noqa: E402
from boundary_realtime.client import _with_token  # noqa: E402
from realtime_server import RealtimeServer, binary_available, SERVER  # noqa: E402

DEADLINE = 5.0
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def within(awaitable, timeout=DEADLINE):
    """Every wait has a deadline: a command that is never answered fails the test."""
    return await asyncio.wait_for(awaitable, timeout)


class Recorder:
    """Collects what a handler receives; `wait` polls a predicate until a deadline."""

    def __init__(self):
        self.items = []

    def __call__(self, *args):
        self.items.append(args[0] if len(args) == 1 else args)

    async def wait(self, predicate=lambda items: bool(items), timeout=DEADLINE, what="event"):
        deadline = time.monotonic() + timeout
        while not predicate(self.items):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not seen within {timeout}s; got {self.items!r}")
            await asyncio.sleep(0.02)
        return self.items

    async def wait_count(self, n, timeout=DEADLINE, what="messages"):
        return await self.wait(lambda items: len(items) >= n, timeout, f"{n} {what}")


class BackoffTest(unittest.TestCase):
    """The reconnect delay function; no server needed."""

    def test_delay_grows_exponentially_up_to_max_delay(self):
        delays = [backoff_delay(n, 0.5, 30.0, 2.0, random=lambda: 1.0) for n in range(10)]
        self.assertEqual(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0])

    def test_full_jitter_spans_zero_to_the_ceiling(self):
        self.assertEqual(backoff_delay(3, 0.5, 30.0, 2.0, random=lambda: 0.0), 0.0)
        self.assertEqual(backoff_delay(3, 0.5, 30.0, 2.0, random=lambda: 0.25), 1.0)
        rng = random.Random(7)
        draws = [backoff_delay(4, 0.5, 30.0, 2.0, random=rng.random) for _ in range(2000)]
        self.assertTrue(all(0.0 <= d <= 8.0 for d in draws), (min(draws), max(draws)))
        self.assertGreater(len(set(draws)), 1900, "delays must be jittered, not constant")
        self.assertLess(min(draws), 1.0)
        self.assertGreater(max(draws), 7.0)

    def test_bounded_for_huge_attempts_and_bad_random_sources(self):
        self.assertEqual(backoff_delay(10_000, 0.5, 30.0, 2.0, random=lambda: 1.0), 30.0)
        self.assertEqual(backoff_ceiling(10_000, 0.5, 30.0, 1e9), 30.0)  # no OverflowError
        self.assertEqual(backoff_delay(2, 0.5, 30.0, 2.0, random=lambda: 5.0), 2.0)
        self.assertEqual(backoff_delay(2, 0.5, 30.0, 2.0, random=lambda: -1.0), 0.0)

    def test_token_is_appended_url_encoded(self):
        url = _with_token("ws://h:1/ws?x=1&token=old", "a+b/c=d e")
        parts = urllib.parse.urlsplit(url)
        self.assertEqual(parts.path, "/ws")
        self.assertIn("token=a%2Bb%2Fc%3Dd%20e", parts.query)
        self.assertEqual(urllib.parse.parse_qs(parts.query), {"x": ["1"], "token": ["a+b/c=d e"]})
        self.assertEqual(_with_token("ws://h/ws", None), "ws://h/ws")


@unittest.skipUnless(binary_available(), f"server binary not found: {SERVER} (set REALTIME_SERVER)")
class ClientTestCase(unittest.IsolatedAsyncioTestCase):
    """A fresh server per test; clients made with `client()` are disconnected at cleanup."""

    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = 2.0
        self.servers = []
        self.server = await self.start_server()

    async def start_server(self, **kw) -> RealtimeServer:
        srv = RealtimeServer(**kw)
        self.servers.append(srv)
        await asyncio.to_thread(srv.start)
        return srv

    async def asyncTearDown(self):
        for srv in self.servers:
            await asyncio.to_thread(srv.stop)

    def run(self, result=None):
        failures_before = len(result.failures) + len(result.errors) if result else 0
        ret = super().run(result)
        failed = result is not None and len(result.failures) + len(result.errors) > failures_before
        for srv in getattr(self, "servers", []):
            if failed or os.environ.get("RT_KEEP_LOGS"):
                sys.stderr.write(f"\n--- server log (port {srv.port}) ---\n{srv.log()}\n---\n")
            srv.remove_log()
        return ret

    def client(self, **kw) -> RealtimeClient:
        if "token" not in kw and "get_token" not in kw:
            kw["token"] = self.server.token("42", ["admin"])
        kw.setdefault("request_timeout", DEADLINE)
        c = RealtimeClient(kw.pop("url", self.server.ws_url), **kw)
        self.addAsyncCleanup(self._disconnect_client, c)
        return c

    @staticmethod
    async def _disconnect_client(client: RealtimeClient):
        await within(client.disconnect())

    async def connected_client(self, **kw) -> RealtimeClient:
        c = self.client(**kw)
        await asyncio.wait_for(c.connect(), DEADLINE)
        return c

    async def api(self, path, body=None, method="POST", server=None):
        srv = server or self.server
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, srv.api, method, path, body)

    async def connection_count(self) -> int:
        return (await self.api("/api/connections", method="GET"))["count"]

    @staticmethod
    def track_states(client) -> Recorder:
        states = Recorder()
        client.on("state", states)
        return states

    @staticmethod
    async def wait_reconnected(states: Recorder, timeout=DEADLINE):
        """Until the recorded states show "reconnecting" followed, eventually, by "connected"."""
        def done(items):
            return "reconnecting" in items and items[-1] == "connected"
        await states.wait(done, timeout, "reconnecting then connected")

    async def wait_process_state(self, pid, letter, timeout=DEADLINE):
        """Until /proc/<pid>/stat shows the process state `letter` (T: stopped)."""
        deadline = time.monotonic() + timeout
        while True:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == letter:
                return
            if time.monotonic() > deadline:
                self.fail(f"process {pid} in state {state!r}, expected {letter!r}")
            await asyncio.sleep(0.01)

    async def wait_state(self, client, state, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while client.state != state:
            if time.monotonic() > deadline:
                self.fail(f"state {client.state!r}, expected {state!r} within {timeout}s")
            await asyncio.sleep(0.02)


class ConnectTest(ClientTestCase):

    async def test_connect_sets_identity_from_the_connected_frame(self):
        c = self.client(token=self.server.token("42", ["admin", "ops"]))
        states = Recorder()
        c.on("state", states)
        self.assertEqual(c.state, "idle")
        await asyncio.wait_for(c.connect(), DEADLINE)
        self.assertEqual(c.state, "connected")
        self.assertRegex(c.connection_id, UUID4_RE)
        self.assertEqual(c.user_id, "42")
        self.assertEqual(c.roles, ["admin", "ops"])
        self.assertEqual(states.items, ["connecting", "connected"])
        self.assertEqual(await self.connection_count(), 1)

    async def test_connected_event_gets_the_server_frame(self):
        c = self.client()
        seen = Recorder()
        c.on("connected", seen)
        await asyncio.wait_for(c.connect(), DEADLINE)
        await seen.wait()
        self.assertEqual(seen.items[0]["type"], "connected")
        self.assertEqual(seen.items[0]["connection-id"], c.connection_id)

    async def test_refused_token_without_reconnect_raises_connect_failed_401(self):
        c = self.client(token="not-a-jwt", reconnect=False)
        with self.assertRaises(RealtimeError) as ctx:
            await asyncio.wait_for(c.connect(), DEADLINE)
        self.assertEqual(ctx.exception.code, "connect-failed")
        self.assertEqual(ctx.exception.status, 401)
        self.assertEqual(c.state, "closed")

    async def test_failed_first_connect_is_retried_with_backoff_when_reconnecting(self):
        tokens = ["not-a-jwt", "not-a-jwt", self.server.token("42")]
        c = self.client(get_token=lambda: tokens.pop(0) if len(tokens) > 1 else tokens[0],
                        initial_delay=0.05, max_delay=0.1)
        errors = Recorder()
        c.on("error", errors)
        await asyncio.wait_for(c.connect(), DEADLINE)
        self.assertEqual(c.state, "connected")
        self.assertEqual([(e.code, e.status) for e in errors.items], [("connect-failed", 401)] * 2)

    async def test_async_context_manager_connects_and_disconnects(self):
        async with RealtimeClient(self.server.ws_url, token=self.server.token("7")) as c:
            self.assertEqual(c.state, "connected")
            self.assertEqual(c.user_id, "7")
            self.assertEqual(await self.connection_count(), 1)
        self.assertEqual(c.state, "closed")
        deadline = time.monotonic() + DEADLINE
        while await self.connection_count() != 0:
            self.assertLess(time.monotonic(), deadline, "server still counts the connection")
            await asyncio.sleep(0.05)


class MessagesTest(ClientTestCase):

    async def test_on_type_receives_send_to_user_and_remover_stops_it(self):
        c = await self.connected_client()
        sync_seen, async_seen, control = Recorder(), Recorder(), Recorder()

        async def async_handler(msg):
            await asyncio.sleep(0)
            async_seen(msg)

        off = c.on("notification", sync_seen)
        c.on("notification", async_handler)
        c.on("notification", control)
        twice = Recorder()  # one function added twice: each removal removes one registration
        off_twice = c.on("notification", twice)
        c.on("notification", twice)
        reply = await self.api("/api/send-to-user",
                               {"user-id": "42", "message": {"type": "notification", "content": "hi"}})
        self.assertEqual(reply, {"delivered": 1})
        await sync_seen.wait()
        await async_seen.wait()
        self.assertEqual(sync_seen.items[0]["content"], "hi")
        self.assertEqual(async_seen.items[0]["content"], "hi")

        self.assertEqual(len(twice.items), 2)
        off()
        off()  # removing twice is harmless
        off_twice()
        await self.api("/api/send-to-user",
                       {"user-id": "42", "message": {"type": "notification", "content": "again"}})
        await control.wait_count(2)
        self.assertEqual([m["content"] for m in control.items], ["hi", "again"])
        self.assertEqual(len(sync_seen.items), 1, "a removed handler must not be called")
        self.assertEqual(len(twice.items), 3, "the other registration of the same function stays")

    async def test_handler_exception_is_reported_as_handler_error(self):
        c = await self.connected_client()
        errors, after = Recorder(), Recorder()

        def broken(msg):
            raise ValueError("boom")

        c.on("error", errors)
        c.on("notification", broken)
        c.on("notification", after)
        await self.api("/api/send-to-user", {"user-id": "42", "message": {"type": "notification"}})
        await errors.wait()
        await after.wait()
        self.assertEqual(errors.items[0].code, "handler-error")
        self.assertIsInstance(errors.items[0].__cause__, ValueError)
        self.assertEqual(c.state, "connected")

    async def test_subscribe_receives_api_publishes_for_its_topic_only(self):
        c = await self.connected_client()
        orders, others = Recorder(), Recorder()
        sub = await asyncio.wait_for(c.subscribe("order:123", orders), DEADLINE)
        await asyncio.wait_for(c.subscribe("order:999", others), DEADLINE)
        self.assertTrue(sub.active)
        reply = await self.api("/api/publish", {"topic": "order:123",
                                                "message": {"type": "order-updated", "status": "shipped"}})
        self.assertEqual(reply, {"delivered": 1})
        await orders.wait()
        self.assertEqual(orders.items[0]["type"], "order-updated")
        self.assertEqual(orders.items[0]["topic"], "order:123")
        self.assertEqual(orders.items[0]["status"], "shipped")
        self.assertEqual(others.items, [], "a topic handler must only see its own topic")

        await asyncio.wait_for(sub.unsubscribe(), DEADLINE)
        self.assertFalse(sub.active)
        reply = await self.api("/api/publish", {"topic": "order:123", "message": {"type": "order-updated"}})
        self.assertEqual(reply, {"delivered": 0}, "unsubscribe must reach the server")
        await within(sub.unsubscribe())  # twice is harmless

    async def test_forbidden_subscribe_raises_with_server_code(self):
        c = await self.connected_client(token=self.server.token("42", ["user"]))
        errors = Recorder()
        c.on("error", errors)
        for topic in ("user:7", "role:admin"):
            with self.assertRaises(RealtimeError) as ctx:
                await asyncio.wait_for(c.subscribe(topic, Recorder()), DEADLINE)
            self.assertEqual(ctx.exception.code, "forbidden", topic)
            self.assertEqual(ctx.exception.topic, topic)
            self.assertEqual(ctx.exception.reply["type"], "error")
        self.assertEqual(c.subscriptions, [], "a refused subscription must not stay registered")
        self.assertEqual(errors.items, [], "an error that answers a command is raised, not emitted")
        own = await asyncio.wait_for(c.subscribe("user:42", Recorder()), DEADLINE)
        self.assertTrue(own.active)
        self.assertEqual(c.state, "connected")

    async def test_publish_returns_delivered_count(self):
        a = await self.connected_client()
        b = await self.connected_client(token=self.server.token("43"))
        got_a, got_b = Recorder(), Recorder()
        await within(a.subscribe("chat:general", got_a))
        await within(b.subscribe("chat:general", got_b))
        delivered = await within(a.publish("chat:general", {"type": "chat", "text": "hello"}))
        self.assertEqual(delivered, 2)
        await got_b.wait()
        self.assertEqual(got_b.items[0]["text"], "hello")
        self.assertEqual(await within(a.publish("chat:empty", {"type": "chat"})), 0)
        with self.assertRaises(RealtimeError) as ctx:
            await within(a.publish("news", {"type": "chat"}))  # not matched by --publish-patterns
        self.assertEqual(ctx.exception.code, "forbidden")

    async def test_ping_returns_pong(self):
        c = await self.connected_client()
        pong = await asyncio.wait_for(c.ping(), DEADLINE)
        self.assertEqual(pong["type"], "pong")

    async def test_concurrent_requests_are_matched_by_ref(self):
        c = await self.connected_client()
        extras = [await self.connected_client(token=self.server.token(f"u{i}")) for i in range(3)]
        # chat:k has exactly k subscribers among the extra clients
        for k in range(4):
            for e in extras[:k]:
                await within(e.subscribe(f"chat:{k}", Recorder()))
        jobs = [k for k in range(4) for _ in range(10)]
        random.Random(3).shuffle(jobs)
        calls = [c.publish(f"chat:{k}", {"type": "chat", "k": k}) for k in jobs]
        calls += [c.ping() for _ in range(5)]
        calls += [c.subscribe("user:other", Recorder())]  # refused, in the middle of the rest
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), DEADLINE)
        self.assertEqual(results[:len(jobs)], jobs, "each publish must get its own topic's count")
        self.assertTrue(all(r["type"] == "pong" for r in results[len(jobs):-1]), results)
        self.assertIsInstance(results[-1], RealtimeError)
        self.assertEqual(results[-1].code, "forbidden")


class TlsTest(ClientTestCase):
    """wss:// with the CA passed through connect_options={"ssl": context}."""

    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = 2.0
        self.servers = []
        certs = tempfile.mkdtemp(prefix="rt-python-tls-")
        self.addCleanup(shutil.rmtree, certs, True)
        maker = os.path.join(HERE, "..", "..", "..", "tests", "integration", "tls_certs.py")
        subprocess.run([sys.executable, maker, certs], check=True, timeout=30)
        self.ca = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        self.server = await self.start_server(
            ssl_context=self.ca,
            extra_args=("--tls-cert", os.path.join(certs, "cert.pem"), "--tls-key", os.path.join(certs, "key.pem")))

    async def test_connects_over_wss_and_receives_a_publish(self):
        self.assertTrue(self.server.ws_url.startswith("wss://"))
        c = await self.connected_client(connect_options={"ssl": self.ca})
        self.assertEqual(c.user_id, "42")
        got = Recorder()
        await within(c.subscribe("order:tls", got))
        reply = await self.api("/api/publish", {"topic": "order:tls", "message": {"type": "over-tls"}})
        self.assertEqual(reply, {"delivered": 1})
        await got.wait()
        self.assertEqual(got.items[0]["type"], "over-tls")

    async def test_an_untrusted_certificate_fails_to_connect(self):
        c = self.client(reconnect=False)  # the system's CAs only: not ours
        with self.assertRaises(Exception):
            await within(c.connect())
        self.assertNotEqual(c.state, "connected")


class QueueTest(ClientTestCase):

    async def test_commands_issued_before_connect_are_queued_then_flushed(self):
        c = self.client()
        got = Recorder()
        sub_task = asyncio.ensure_future(c.subscribe("chat:q", got))
        pub_task = asyncio.ensure_future(c.publish("chat:q", {"type": "chat", "n": 1}))
        await asyncio.sleep(0.2)
        self.assertFalse(sub_task.done() or pub_task.done(), "nothing can be answered while idle")
        await asyncio.wait_for(c.connect(), DEADLINE)
        sub = await asyncio.wait_for(sub_task, DEADLINE)
        self.assertTrue(sub.active)
        self.assertEqual(await asyncio.wait_for(pub_task, DEADLINE), 1, "sent after the subscribe, in order")
        await got.wait()
        self.assertEqual(got.items[0]["n"], 1)

    async def test_commands_while_reconnecting_are_queued_and_flushed_in_order(self):
        watcher = await self.connected_client(token=self.server.token("watcher"))
        got = Recorder()
        await within(watcher.subscribe("chat:log", got))
        # random=1.0 makes the first reconnect delay exactly initial_delay
        c = await self.connected_client(initial_delay=0.5, random=lambda: 1.0)
        await self.api("/api/disconnect", {"connection-id": c.connection_id})
        await self.wait_state(c, "reconnecting")
        tasks = [asyncio.ensure_future(c.publish("chat:log", {"type": "chat", "n": n})) for n in range(5)]
        await asyncio.sleep(0.1)
        self.assertEqual(c.state, "reconnecting")
        self.assertFalse(any(t.done() for t in tasks), "queued commands must wait for the connection")
        self.assertEqual(got.items, [])
        results = await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
        self.assertEqual(results, [1] * 5)
        await got.wait_count(5)
        self.assertEqual([m["n"] for m in got.items], [0, 1, 2, 3, 4])

    async def test_queue_full_beyond_the_bound(self):
        c = self.client(max_queued_commands=3)
        queued = [asyncio.ensure_future(c.ping()) for _ in range(3)]
        await asyncio.sleep(0)  # let them reach the queue
        with self.assertRaises(RealtimeError) as ctx:
            await within(c.ping())
        self.assertEqual(ctx.exception.code, "queue-full")
        with self.assertRaises(RealtimeError) as ctx:
            await within(c.publish("chat:x", {"type": "chat"}))
        self.assertEqual(ctx.exception.code, "queue-full")
        await asyncio.wait_for(c.connect(), DEADLINE)
        pongs = await asyncio.wait_for(asyncio.gather(*queued), DEADLINE)
        self.assertEqual([p["type"] for p in pongs], ["pong"] * 3)
        self.assertEqual((await within(c.ping()))["type"], "pong", "the queue is free again once connected")

    async def test_queue_time_does_not_count_toward_the_request_timeout(self):
        c = self.client(request_timeout=0.2)
        queued = asyncio.ensure_future(c.ping())
        await asyncio.sleep(0.5)
        self.assertFalse(queued.done(), "the timeout runs from the send, as in the JS client")
        await asyncio.wait_for(c.connect(), DEADLINE)
        self.assertEqual((await asyncio.wait_for(queued, DEADLINE))["type"], "pong")

    async def test_sent_command_without_reply_times_out(self):
        c = await self.connected_client(request_timeout=0.3)
        self.server.proc.send_signal(signal.SIGSTOP)  # the server stops answering
        try:
            await self.wait_process_state(self.server.proc.pid, "T")
            t0 = time.monotonic()
            with self.assertRaises(RealtimeError) as ctx:
                await asyncio.wait_for(c.ping(), DEADLINE)
            self.assertEqual(ctx.exception.code, "timeout")
            self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        finally:
            self.server.proc.send_signal(signal.SIGCONT)
        # the late pong matches no pending command; the next ping gets its own
        pong = await asyncio.wait_for(c.ping(), DEADLINE)
        self.assertEqual(pong["type"], "pong")
        self.assertEqual(c.state, "connected")


class ReconnectTest(ClientTestCase):

    async def test_server_restart_reconnects_resubscribes_and_delivers(self):
        port, secret, key = self.server.port, self.server.jwt_secret, self.server.api_key
        token_calls = []

        def get_token():  # a plain function is fine too
            token_calls.append(time.monotonic())
            return self.server.token("42")

        c = await self.connected_client(get_token=get_token, initial_delay=0.05, max_delay=0.2,
                                        shutdown_reconnect_delay=0.8)
        first_id = c.connection_id
        live, shutdowns, disconnects, connects, errors = (Recorder() for _ in range(5))
        await within(c.subscribe("chat:live", live))
        c.on("server-shutdown", lambda m: shutdowns((time.monotonic(), m)))
        c.on("connected", lambda m: connects((time.monotonic(), m)))
        c.on("error", errors)

        c.on("disconnected", lambda *a: disconnects((time.monotonic(), *a)))
        old = self.server
        old.terminate()
        await shutdowns.wait(what="server-shutdown")
        self.assertEqual(shutdowns.items[0][1]["message"], "Server shutting down gracefully")
        await disconnects.wait(what="disconnected")
        closed_at, code, _reason, will_reconnect = disconnects.items[0]
        self.assertEqual((code, will_reconnect), (1001, True))
        self.assertGreaterEqual(closed_at, shutdowns.items[0][0], "server-shutdown comes first")
        self.assertEqual(c.state, "reconnecting")
        self.assertEqual(await asyncio.to_thread(old.wait), 0)
        self.server = await self.start_server(port=port, jwt_secret=secret, api_key=key)
        await connects.wait(what="reconnect", timeout=10)
        await self.wait_state(c, "connected")

        self.assertGreaterEqual(len(token_calls), 2, "get_token is called before every connect")
        first_retry = token_calls[1] - closed_at
        self.assertGreaterEqual(first_retry, 0.8, "must wait shutdown_reconnect_delay after server-shutdown")
        self.assertNotEqual(c.connection_id, first_id)
        self.assertEqual(c._attempt, 0, "attempt counter resets after a successful reconnect")
        reply = await self.api("/api/publish", {"topic": "chat:live", "message": {"type": "tick", "n": 1}})
        self.assertEqual(reply, {"delivered": 1}, "the subscription must be re-established")
        await live.wait()
        self.assertEqual(live.items[0]["n"], 1)

    async def test_reconnect_attempts_back_off_while_the_server_is_down(self):
        port, secret, key = self.server.port, self.server.jwt_secret, self.server.api_key
        c = await self.connected_client(initial_delay=0.05, max_delay=0.2,
                                        shutdown_reconnect_delay=0.0, random=lambda: 1.0)
        errors = Recorder()
        c.on("error", errors)
        await asyncio.to_thread(self.server.stop)
        await errors.wait_count(3, what="failed attempts")
        self.assertTrue(all(isinstance(e, RealtimeError) and e.code == "connect-failed"
                            for e in errors.items[:3]), errors.items)
        # random=1.0: the waits are exactly 0.05, 0.1, 0.2, 0.2 ... (capped at max_delay)
        self.assertGreaterEqual(c._attempt, 3)
        self.assertEqual(c.state, "reconnecting")
        self.server = await self.start_server(port=port, jwt_secret=secret, api_key=key)
        await self.wait_state(c, "connected")
        self.assertEqual(c._attempt, 0)
        self.assertEqual((await within(c.ping()))["type"], "pong")

    async def test_expiring_token_is_refreshed_by_get_token_on_reconnect(self):
        issued = []

        async def get_token():
            ttl = 2 if not issued else 3600  # the first token expires almost at once
            token = await asyncio.to_thread(self.server.token, "42", (), ttl)
            issued.append(token)
            return token

        # No refresh ahead of exp: the server closes with 4001 when the first token expires,
        # and the client reconnects (4001 is not a permanent failure) with a fresh token.
        c = await self.connected_client(get_token=get_token, initial_delay=0.05, refresh_ahead=False)
        first_id = c.connection_id
        got = Recorder()
        await within(c.subscribe("chat:after", got))
        states = self.track_states(c)
        closes = Recorder()
        c.on("disconnected", closes)
        await closes.wait(lambda items: len(items) >= 1, 4.5, "the 4001 close")
        self.assertEqual(closes.items[0], (4001, "token expired", True))
        await self.wait_reconnected(states)
        self.assertEqual(len(issued), 2, "get_token must be called again for the reconnect")
        self.assertNotEqual(c.connection_id, first_id)
        reply = await self.api("/api/publish", {"topic": "chat:after", "message": {"type": "tick"}})
        self.assertEqual(reply, {"delivered": 1})
        await got.wait()

    async def test_subscription_refused_after_reconnect_is_dropped_and_reported(self):
        tokens = [self.server.token("42", ["admin"]), self.server.token("42", [])]
        c = await self.connected_client(get_token=lambda: tokens.pop(0), initial_delay=0.05)
        errors = Recorder()
        c.on("error", errors)
        admin = await within(c.subscribe("role:admin", Recorder()))
        states = self.track_states(c)
        await self.api("/api/disconnect", {"connection-id": c.connection_id})
        await self.wait_reconnected(states)
        await errors.wait(what="refused resubscription")
        self.assertEqual(errors.items[0].code, "forbidden")
        self.assertFalse(admin.active)
        self.assertEqual(c.subscriptions, [])

    async def test_no_reconnect_after_disconnect(self):
        calls = []

        def get_token():
            calls.append(1)
            return self.server.token("42")

        c = await self.connected_client(get_token=get_token, initial_delay=0.01, max_delay=0.02)
        kept = Recorder()
        await within(c.subscribe("chat:kept", kept))
        disconnects = Recorder()
        c.on("disconnected", disconnects)
        inflight = asyncio.ensure_future(c.ping())
        await within(c.disconnect())
        self.assertEqual(c.state, "closed")
        self.assertEqual(disconnects.items, [(1000, "client disconnect", False)])
        with self.assertRaises(RealtimeError) as ctx:
            await asyncio.wait_for(inflight, DEADLINE)
        self.assertEqual(ctx.exception.code, "disconnected")

        await asyncio.sleep(0.5)  # many backoff periods
        self.assertEqual(await self.connection_count(), 0)
        self.assertEqual(calls, [1], "get_token must not be called again")
        self.assertEqual(c.state, "closed")
        for call in (c.publish("chat:x", {"type": "chat"}), c.ping()):
            with self.assertRaises(RealtimeError) as ctx:
                await within(call)
            self.assertEqual(ctx.exception.code, "disconnected")

        # only an explicit connect() opens it again, with the subscription re-established
        await asyncio.wait_for(c.connect(), DEADLINE)
        self.assertEqual(calls, [1, 1])
        reply = await self.api("/api/publish", {"topic": "chat:kept", "message": {"type": "tick"}})
        self.assertEqual(reply, {"delivered": 1})
        await kept.wait()

    async def test_reconnect_false_closes_after_a_lost_connection(self):
        c = await self.connected_client(reconnect=False, initial_delay=0.01)
        disconnects = Recorder()
        c.on("disconnected", disconnects)
        await self.api("/api/disconnect", {"connection-id": c.connection_id})
        await disconnects.wait()
        self.assertEqual(disconnects.items[0][0], 1000)
        self.assertFalse(disconnects.items[0][2])
        self.assertEqual(c.state, "closed")
        await asyncio.sleep(0.3)
        self.assertEqual(await self.connection_count(), 0)
        self.assertEqual(c.state, "closed")
        with self.assertRaises(RealtimeError) as ctx:
            await within(c.ping())
        self.assertEqual(ctx.exception.code, "disconnected")
        await asyncio.wait_for(c.connect(), DEADLINE)  # a manual connect still works
        self.assertEqual(c.state, "connected")


if __name__ == "__main__":
    unittest.main()
