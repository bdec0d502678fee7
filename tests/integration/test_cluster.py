"""Cluster mode (docs/cluster.md): three real realtime-server nodes sharing one real Redis
(redis-server started here on a free port, no persistence). Clients sit on different nodes;
every assertion is about what crossed nodes, with exact counts, and every wait has a deadline."""

import asyncio
import json
import secrets
import time
import unittest
import urllib.parse

import websockets
import websockets.client
import websockets.exceptions

from rt_harness import (DEFAULT_TIMEOUT, HOST, RealtimeTestCase, RedisProcess, ServerProcess,
                        no_server, random_secret)

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
NODES = ("node-a", "node-b", "node-c")


class ClusterTestCase(RealtimeTestCase):
    """Starts Redis and three nodes (same JWT secret and API key) for every test."""

    NODE_ARGS: list[str] = ["--publish-patterns", "chat:**", "--cluster-reply-timeout", "1000"]

    def setUp(self):
        self.server = None  # the harness's single server is not used
        self.redis = RedisProcess().start()
        self.addCleanup(self.redis.remove_log)
        self.addCleanup(self.redis.stop)
        self.secret = random_secret(48)
        self.key = secrets.token_hex(16)
        self.nodes = [self.start_node(n) for n in NODES]
        self.a, self.b, self.c = self.nodes

    def start_node(self, node_id: str) -> ServerProcess:
        srv = ServerProcess(self.NODE_ARGS, jwt_secret=self.secret, api_key=self.key,
                            redis=self.redis.url, node_id=node_id)
        self.addCleanup(self._stop_node, srv)
        srv.start()
        # Healthy means listening; cluster-ready means Redis subscriptions are in effect.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, body = srv.health()
            if status == 200 and body.get("redis") == "up":
                return srv
            time.sleep(0.05)
        self.fail(f"{node_id} did not reach redis within 10s\n{srv.log()}")

    def _stop_node(self, srv: ServerProcess):
        if getattr(srv, "killed", False) or not srv.started:
            srv.kill()
            srv.remove_log()
            return
        code = srv.stop()
        failed = code != 0
        if failed:
            print(f"\n----- log of {srv.node_id} -----\n{srv.log()}")
        srv.remove_log()
        if code is None:
            self.fail(f"{srv.node_id} did not exit within the deadline of SIGTERM")
        self.assertEqual(code, 0, f"{srv.node_id} exit status")

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        ret = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            for srv in getattr(self, "nodes", []):
                print(f"\n----- log of {srv.node_id} -----\n{srv.log()}")
        return ret

    # -- helpers
    async def join(self, node: ServerProcess, user_id: str, roles=None):
        token = node.token(user_id, roles)
        uri = f"ws://{HOST}:{node.port}/ws?token={urllib.parse.quote(token, safe='')}"
        ws = await websockets.client.connect(uri, max_queue=None, open_timeout=DEFAULT_TIMEOUT,
                                             close_timeout=2)
        self.addAsyncCleanup(self._close_ws, ws)
        hello = await self.recv_json(ws)
        self.assertEqual(hello["type"], "connected")
        return ws, hello["connection-id"]

    async def call(self, node: ServerProcess, path: str, body=None, method="POST", headers=None):
        return await asyncio.to_thread(node.api_sync, method, path, body, headers=headers)

    async def ok(self, node: ServerProcess, path: str, body=None, method="POST"):
        status, data = await self.call(node, path, body, method)
        self.assertEqual(status, 200, f"{node.node_id} {path} {body!r} -> {status} {data!r}")
        return data

    async def expect(self, ws, mtype: str, **fields):
        msg = await self.recv_json(ws)
        self.assertEqual(msg["type"], mtype, msg)
        for k, v in fields.items():
            self.assertEqual(msg.get(k), v, msg)
        return msg

    async def quiet(self, *sockets, duration=0.3):
        await asyncio.gather(*(self.expect_silence(ws, duration) for ws in sockets))

    async def count_on(self, node):
        data = await self.ok(node, "/api/connections", method="GET")
        return data["count"]


class ClusterRoutingTest(ClusterTestCase):

    @no_server
    async def test_every_route_reaches_every_node_with_exact_counts(self):
        u1a, _ = await self.join(self.a, "u1", ["admin"])
        u1b, _ = await self.join(self.b, "u1", ["user"])
        u2c, u2c_id = await self.join(self.c, "u2", ["admin"])
        u3b, _ = await self.join(self.b, "u3")
        everyone = (u1a, u1b, u2c, u3b)
        for ws in (u1a, u2c):
            reply = await self.command(ws, {"action": "subscribe", "topic": "order:1"})
            self.assertEqual(reply["type"], "subscribed", reply)

        for node in self.nodes:
            self.assertEqual(await self.count_on(node), 4, node.node_id)

        # From node B, whose own clients are u1b and u3b.
        data = await self.ok(self.b, "/api/send-to-user", {"user-id": "u1", "message": {"type": "dm"}})
        self.assertEqual(data, {"delivered": 2})
        m1 = await self.expect(u1a, "dm")
        m2 = await self.expect(u1b, "dm")
        self.assertEqual(m1["timestamp"], m2["timestamp"], "enveloped once, at the origin")
        await self.quiet(*everyone)

        data = await self.ok(self.b, "/api/send-to-role", {"role": "admin", "message": {"type": "adm"}})
        self.assertEqual(data, {"delivered": 2})
        await self.expect(u1a, "adm")
        await self.expect(u2c, "adm")
        await self.quiet(*everyone)

        data = await self.ok(self.b, "/api/broadcast", {"message": {"type": "all"}})
        self.assertEqual(data, {"delivered": 4})
        for ws in everyone:
            await self.expect(ws, "all")
        await self.quiet(*everyone)

        data = await self.ok(self.b, "/api/publish", {"topic": "order:1", "message": {"type": "upd"}})
        self.assertEqual(data, {"delivered": 2})
        await self.expect(u1a, "upd", topic="order:1")
        await self.expect(u2c, "upd", topic="order:1")
        await self.quiet(*everyone)

        data = await self.ok(self.a, "/api/send-to-connection",
                             {"connection-id": u2c_id, "message": {"type": "one"}})
        self.assertEqual(data, {"delivered": True})
        await self.expect(u2c, "one")
        data = await self.ok(self.a, "/api/send-to-connection",
                             {"connection-id": UNKNOWN_ID, "message": {"type": "none"}})
        self.assertEqual(data, {"delivered": False})
        await self.quiet(*everyone)

        # Nobody on any node: 0, and nothing arrives.
        data = await self.ok(self.c, "/api/send-to-user", {"user-id": "nobody", "message": {"type": "x"}})
        self.assertEqual(data, {"delivered": 0})
        await self.quiet(*everyone)

    @no_server
    async def test_client_publish_on_one_node_reaches_subscribers_on_the_others(self):
        pub, _ = await self.join(self.a, "p")
        sb, _ = await self.join(self.b, "s1")
        sc, _ = await self.join(self.c, "s2")
        other, _ = await self.join(self.c, "s3")
        for ws in (sb, sc):
            reply = await self.command(ws, {"action": "subscribe", "topic": "chat:room"})
            self.assertEqual(reply["type"], "subscribed")
        reply = await self.command(pub, {"action": "publish", "topic": "chat:room", "ref": 7,
                                         "message": {"type": "said", "text": "hi"}})
        self.assertEqual(reply, {"type": "published", "topic": "chat:room", "delivered": 2, "ref": 7})
        for ws in (sb, sc):
            await self.expect(ws, "said", text="hi", topic="chat:room")
        await self.quiet(pub, sb, sc, other)

        # Unsubscribing on C removes C's interest: only B still gets it.
        reply = await self.command(sc, {"action": "unsubscribe", "topic": "chat:room"})
        self.assertEqual(reply["type"], "unsubscribed")
        reply = await self.command(pub, {"action": "publish", "topic": "chat:room",
                                         "message": {"type": "said", "text": "again"}})
        self.assertEqual(reply["delivered"], 1, reply)
        await self.expect(sb, "said", text="again")
        await self.quiet(pub, sb, sc, other)

    @no_server
    async def test_thousand_sends_through_another_node_arrive_in_order_once(self):
        ws, _ = await self.join(self.c, "ordered")
        n = 1000

        def send_all():
            bad = []
            for i in range(n):
                status, data = self.a.api_sync("POST", "/api/send-to-user",
                                               {"user-id": "ordered", "message": {"type": "seq", "i": i}})
                if status != 200 or data != {"delivered": 1}:
                    bad.append((i, status, data))
            return bad

        sender = asyncio.create_task(asyncio.to_thread(send_all))
        got = []
        deadline = time.monotonic() + 60
        while len(got) < n and time.monotonic() < deadline:
            msg = await self.recv_json(ws, timeout=10)
            got.append(msg["i"])
        self.assertEqual(await asyncio.wait_for(sender, 30), [])
        self.assertEqual(got, list(range(n)))
        await self.quiet(ws)

    @no_server
    async def test_fire_and_forget_answers_queued_and_keeps_order(self):
        ws, _ = await self.join(self.b, "ff")
        for i in range(50):
            body = {"user-id": "ff", "message": {"type": "seq", "i": i}}
            if i % 2:
                status, data = await self.call(self.a, "/api/send-to-user", body,
                                               headers={"Prefer": "respond-async"})
            else:
                status, data = await self.call(self.a, "/api/send-to-user", dict(body, wait=False))
            self.assertEqual((status, data), (200, {"delivered": None, "queued": True}))
        got = [(await self.recv_json(ws))["i"] for _ in range(50)]
        self.assertEqual(got, list(range(50)))
        await self.quiet(ws)

    @no_server
    async def test_api_subscribe_and_disconnect_of_a_connection_on_another_node(self):
        ws, cid = await self.join(self.c, "target")
        bystander, _ = await self.join(self.c, "target")
        data = await self.ok(self.a, "/api/subscribe", {"connection-id": cid, "topic": "news"})
        self.assertEqual(data, {"subscribed": True})
        data = await self.ok(self.b, "/api/publish", {"topic": "news", "message": {"type": "n"}})
        self.assertEqual(data, {"delivered": 1})
        await self.expect(ws, "n", topic="news")
        await self.quiet(ws, bystander)

        data = await self.ok(self.a, "/api/unsubscribe", {"connection-id": cid, "topic": "news"})
        self.assertEqual(data, {"unsubscribed": True})
        data = await self.ok(self.b, "/api/publish", {"topic": "news", "message": {"type": "n"}})
        self.assertEqual(data, {"delivered": 0})
        await self.quiet(ws, bystander)

        data = await self.ok(self.a, "/api/subscribe", {"connection-id": UNKNOWN_ID, "topic": "news"})
        self.assertEqual(data, {"subscribed": False})

        data = await self.ok(self.b, "/api/disconnect", {"connection-id": cid})
        self.assertEqual(data, {"disconnected": 1})
        self.assertEqual(await self.wait_closed_code(ws), 1000)
        await self.eventually(lambda: self.count_on(self.a), lambda n: n == 1, what="count after disconnect")
        await self.assert_ping_works(bystander)

        other, _ = await self.join(self.a, "target")
        data = await self.ok(self.b, "/api/disconnect", {"user-id": "target"})
        self.assertEqual(data, {"disconnected": 2})
        self.assertEqual(await self.wait_closed_code(bystander), 1000)
        self.assertEqual(await self.wait_closed_code(other), 1000)


class ClusterConfigTest(RealtimeTestCase):

    def run_server(self, *args):
        import subprocess
        from rt_harness import SERVER, server_binary_available
        if not server_binary_available():
            self.skipTest("server binary not found")
        return subprocess.run([SERVER, "--port", "0", "--jwt-secret", random_secret(48),
                               "--api-key", "k" * 32, *args],
                              capture_output=True, text=True, timeout=10)

    @no_server
    def test_bad_redis_url_or_node_id_is_refused_at_startup(self):
        for args, why in ((["--redis", "http://127.0.0.1:6379"], "--redis"),
                          (["--redis", "redis://127.0.0.1:0"], "--redis"),
                          (["--redis", "redis://127.0.0.1:6379", "--node-id", "a b"], "--node-id")):
            with self.subTest(args=args):
                r = self.run_server(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(why, r.stderr)


class ClusterMembershipTest(ClusterTestCase):

    @no_server
    async def test_node_killed_with_sigkill_leaves_the_count_within_seconds(self):
        await self.join(self.a, "x")
        await self.join(self.c, "y")
        await self.join(self.c, "z")
        self.assertEqual(await self.count_on(self.a), 3)
        beat = await asyncio.to_thread(self.redis.command, "GET", "rt:node:node-c")
        self.assertIsNotNone(beat, "node-c publishes a heartbeat")
        self.c.killed = True
        self.c.kill()
        t0 = time.monotonic()
        await self.eventually(lambda: self.count_on(self.a), lambda n: n == 1, timeout=5,
                              what="cluster count without node-c")
        self.assertEqual(await self.count_on(self.b), 1)
        # The heartbeat key expires (3 s TTL) once node-c stops refreshing it.
        await self.eventually(lambda: asyncio.to_thread(self.redis.command, "EXISTS", "rt:node:node-c"),
                              lambda v: v == 0, timeout=6, what="node-c heartbeat expiry")
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(await asyncio.to_thread(self.redis.command, "EXISTS", "rt:node:node-a"), 1)


class ClusterRedisOutageTest(ClusterTestCase):

    async def health(self, node):
        return (await asyncio.to_thread(node.health))[1]

    @no_server
    async def test_redis_restart_local_keeps_working_then_cluster_resumes_without_duplicates(self):
        wa, _ = await self.join(self.a, "ua")
        wb, _ = await self.join(self.b, "ub")
        data = await self.ok(self.a, "/api/send-to-user", {"user-id": "ub", "message": {"type": "before"}})
        self.assertEqual(data, {"delivered": 1})
        await self.expect(wb, "before")

        self.redis.stop()
        for node in (self.a, self.b):
            h = await self.eventually(lambda: self.health(node), lambda h: h.get("redis") == "down",
                                      timeout=5, what=f"{node.node_id} sees redis down")
            self.assertEqual(h["status"], "degraded")
        self.assertEqual(await asyncio.to_thread(self.a.metric, "realtime_redis_up"), 0)

        # Local delivery keeps working; the API says the cluster was not reached.
        status, data = await self.call(self.a, "/api/send-to-user",
                                       {"user-id": "ua", "message": {"type": "local"}})
        self.assertEqual((status, data), (503, {"error": "cluster unavailable", "delivered": 1}))
        await self.expect(wa, "local")
        status, data = await self.call(self.a, "/api/send-to-user",
                                       {"user-id": "ub", "message": {"type": "lost"}})
        self.assertEqual((status, data), (503, {"error": "cluster unavailable", "delivered": 0}))
        # A new client can still connect to a node and be reached locally.
        late, _ = await self.join(self.b, "late")
        status, data = await self.call(self.b, "/api/send-to-user",
                                       {"user-id": "late", "message": {"type": "hi"}})
        self.assertEqual(status, 503)
        await self.expect(late, "hi")
        await self.quiet(wa, wb)

        self.redis.start()
        for node in self.nodes:
            await self.eventually(lambda: self.health(node), lambda h: h.get("redis") == "up",
                                  timeout=10, what=f"{node.node_id} reconnects")
        self.assertEqual(await asyncio.to_thread(self.a.metric, "realtime_redis_up"), 1)
        self.assertGreaterEqual(await asyncio.to_thread(self.a.metric, "realtime_redis_reconnects_total"), 1)

        # Interests were subscribed again: cross-node delivery resumes, once each.
        data = await self.ok(self.a, "/api/send-to-user", {"user-id": "ub", "message": {"type": "after"}})
        self.assertEqual(data, {"delivered": 1})
        data = await self.ok(self.c, "/api/send-to-user", {"user-id": "late", "message": {"type": "after"}})
        self.assertEqual(data, {"delivered": 1})
        data = await self.ok(self.c, "/api/broadcast", {"message": {"type": "every"}})
        self.assertEqual(data, {"delivered": 3})
        await self.expect(wb, "after")
        await self.expect(late, "after")
        for ws in (wa, wb, late):
            await self.expect(ws, "every")
        await self.quiet(wa, wb, late, duration=0.5)
        self.assertEqual(await self.count_on(self.c), 3)


if __name__ == "__main__":
    unittest.main()
