"""Cluster mode on a real Redis Cluster (docs/cluster.md, "Running on Redis Cluster"): three
redis-server masters started here (cluster-enabled, no replicas, no persistence) and three
realtime-server nodes given `--redis redis-cluster://...`. Topics are chosen so that their
channels land on all three shards (slots computed here, independently of the server), and the
tests check on the owning master that the nodes' subscriptions really are sharded ones.
Every wait has a deadline; every process is stopped at cleanup."""

import asyncio
import json
import time
import unittest

from rt_harness import (RealtimeTestCase, RedisClusterProcess, no_server, random_secret,
                        redis_key_slot)
from test_cluster import NODES, UNKNOWN_ID, ClusterTestCase


class RedisClusterTestCase(ClusterTestCase):
    """A 3-master Redis Cluster and three nodes (same JWT secret and API key) per test."""

    def setUp(self):
        self.server = None
        self.cluster = RedisClusterProcess(3)
        self.addCleanup(self.cluster.remove_logs)
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        self.redis = self.cluster  # ClusterTestCase.start_node() reads self.redis.url
        import secrets
        self.secret = random_secret(48)
        self.key = secrets.token_hex(16)
        self.nodes = [self.start_node(n) for n in NODES]
        self.a, self.b, self.c = self.nodes

    def topics_on_every_shard(self, prefix: str) -> list[str]:
        """One topic per master, in the masters' order: rt:t:<topic> hashes to that master."""
        found = {}
        i = 0
        while len(found) < len(self.cluster.nodes):
            topic = f"{prefix}{i}"
            found.setdefault(self.cluster.master_for(f"rt:t:{topic}").port, topic)
            i += 1
        return [found[n.port] for n in self.cluster.nodes]

    async def shard_subscribers(self, topic: str) -> list[int]:
        """PUBSUB SHARDNUMSUB of rt:t:<topic> on every master (only the owner counts any)."""
        channel = f"rt:t:{topic}"
        out = []
        for n in self.cluster.nodes:
            reply = await asyncio.to_thread(n.command, "PUBSUB", "SHARDNUMSUB", channel)
            out.append(reply[1])
        return out

    def owner_index(self, topic: str) -> int:
        port = self.cluster.master_for(f"rt:t:{topic}").port
        return [n.port for n in self.cluster.nodes].index(port)


class RedisClusterRoutingTest(RedisClusterTestCase):

    @no_server
    async def test_every_route_reaches_every_node_with_exact_counts(self):
        topics = self.topics_on_every_shard("order:")
        self.assertEqual(len({redis_key_slot(f"rt:t:{t}") for t in topics}), 3)
        u1a, _ = await self.join(self.a, "u1", ["admin"])
        u1b, _ = await self.join(self.b, "u1", ["user"])
        u2c, u2c_id = await self.join(self.c, "u2", ["admin"])
        u3b, _ = await self.join(self.b, "u3")
        everyone = (u1a, u1b, u2c, u3b)
        for topic in topics:
            for ws in (u1a, u2c):
                reply = await self.command(ws, {"action": "subscribe", "topic": topic})
                self.assertEqual(reply["type"], "subscribed", reply)
            # Sharded: nodes A and C hold an SSUBSCRIBE on the owning master, nobody elsewhere.
            expected = [0, 0, 0]
            expected[self.owner_index(topic)] = 2
            self.assertEqual(await self.shard_subscribers(topic), expected, topic)

        for node in self.nodes:
            self.assertEqual(await self.count_on(node), 4, node.node_id)

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

        for topic in topics:  # one per shard, from the node that has no subscriber
            data = await self.ok(self.b, "/api/publish", {"topic": topic, "message": {"type": "upd"}})
            self.assertEqual(data, {"delivered": 2}, topic)
            await self.expect(u1a, "upd", topic=topic)
            await self.expect(u2c, "upd", topic=topic)
            await self.quiet(*everyone)
            data = await self.ok(self.a, "/api/publish", {"topic": topic, "message": {"type": "upd2"}})
            self.assertEqual(data, {"delivered": 2}, topic)
            await self.expect(u1a, "upd2", topic=topic)
            await self.expect(u2c, "upd2", topic=topic)
            await self.quiet(*everyone)

        data = await self.ok(self.a, "/api/send-to-connection",
                             {"connection-id": u2c_id, "message": {"type": "one"}})
        self.assertEqual(data, {"delivered": True})
        await self.expect(u2c, "one")
        data = await self.ok(self.a, "/api/send-to-connection",
                             {"connection-id": UNKNOWN_ID, "message": {"type": "none"}})
        self.assertEqual(data, {"delivered": False})
        await self.quiet(*everyone)

        data = await self.ok(self.c, "/api/publish", {"topic": "nobody:here", "message": {"type": "x"}})
        self.assertEqual(data, {"delivered": 0})
        data = await self.ok(self.c, "/api/send-to-user", {"user-id": "nobody", "message": {"type": "x"}})
        self.assertEqual(data, {"delivered": 0})
        await self.quiet(*everyone)

    @no_server
    async def test_api_subscribe_of_a_connection_on_another_node_then_publish_on_its_shard(self):
        ws, cid = await self.join(self.c, "target")
        bystander, _ = await self.join(self.b, "other")
        for topic in self.topics_on_every_shard("news:"):
            data = await self.ok(self.a, "/api/subscribe", {"connection-id": cid, "topic": topic})
            self.assertEqual(data, {"subscribed": True})
            data = await self.ok(self.b, "/api/publish", {"topic": topic, "message": {"type": "n"}})
            self.assertEqual(data, {"delivered": 1}, topic)
            await self.expect(ws, "n", topic=topic)
            data = await self.ok(self.a, "/api/unsubscribe", {"connection-id": cid, "topic": topic})
            self.assertEqual(data, {"unsubscribed": True})
            data = await self.ok(self.b, "/api/publish", {"topic": topic, "message": {"type": "n"}})
            self.assertEqual(data, {"delivered": 0}, topic)
            self.assertEqual(await self.shard_subscribers(topic), [0, 0, 0], topic)
            await self.quiet(ws, bystander)

    @no_server
    async def test_client_publish_on_one_node_reaches_subscribers_on_the_others(self):
        pub, _ = await self.join(self.a, "p")
        sb, _ = await self.join(self.b, "s1")
        sc, _ = await self.join(self.c, "s2")
        other, _ = await self.join(self.c, "s3")
        for topic in self.topics_on_every_shard("chat:room"):
            for ws in (sb, sc):
                reply = await self.command(ws, {"action": "subscribe", "topic": topic})
                self.assertEqual(reply["type"], "subscribed")
            reply = await self.command(pub, {"action": "publish", "topic": topic, "ref": 7,
                                             "message": {"type": "said", "text": "hi"}})
            self.assertEqual(reply, {"type": "published", "topic": topic, "delivered": 2, "ref": 7})
            for ws in (sb, sc):
                await self.expect(ws, "said", text="hi", topic=topic)
            await self.quiet(pub, sb, sc, other)

            reply = await self.command(sc, {"action": "unsubscribe", "topic": topic})
            self.assertEqual(reply["type"], "unsubscribed")
            reply = await self.command(pub, {"action": "publish", "topic": topic,
                                             "message": {"type": "said", "text": "again"}})
            self.assertEqual(reply["delivered"], 1, reply)
            await self.expect(sb, "said", text="again")
            await self.quiet(pub, sb, sc, other)

    @no_server
    async def test_five_hundred_publishes_through_another_node_arrive_in_order_once(self):
        topic = self.topics_on_every_shard("seq:")[2]
        ws, _ = await self.join(self.c, "ordered")
        reply = await self.command(ws, {"action": "subscribe", "topic": topic})
        self.assertEqual(reply["type"], "subscribed")
        n = 500

        def send_all():
            bad = []
            for i in range(n):
                status, data = self.a.api_sync("POST", "/api/publish",
                                               {"topic": topic, "message": {"type": "seq", "i": i}})
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


class RedisClusterMembershipTest(RedisClusterTestCase):

    @no_server
    async def test_node_killed_with_sigkill_leaves_the_counts(self):
        topics = self.topics_on_every_shard("k:")
        wa, _ = await self.join(self.a, "x")
        wc1, _ = await self.join(self.c, "y")
        wc2, _ = await self.join(self.c, "y")
        for topic in topics:
            for ws in (wa, wc1, wc2):
                reply = await self.command(ws, {"action": "subscribe", "topic": topic})
                self.assertEqual(reply["type"], "subscribed")
        self.assertEqual(await self.count_on(self.b), 3)
        data = await self.ok(self.b, "/api/send-to-user", {"user-id": "y", "message": {"type": "m"}})
        self.assertEqual(data, {"delivered": 2})
        key = "rt:node:node-c"
        # The heartbeat (refreshed every second with the local count) is on the owning master.
        await self.eventually(lambda: asyncio.to_thread(self.cluster.command, key, "GET", key),
                              lambda v: v is not None and v.endswith(" 2"), timeout=3, what="node-c heartbeat")

        self.c.killed = True
        self.c.kill()
        t0 = time.monotonic()
        await self.eventually(lambda: self.count_on(self.a), lambda n: n == 1, timeout=5,
                              what="cluster count without node-c")
        self.assertEqual(await self.count_on(self.b), 1)
        for topic in topics:
            data = await self.ok(self.b, "/api/publish", {"topic": topic, "message": {"type": "t"}})
            self.assertEqual(data, {"delivered": 1}, topic)
            await self.expect(wa, "t", topic=topic)
            expected = [0, 0, 0]
            expected[self.owner_index(topic)] = 1
            self.assertEqual(await self.shard_subscribers(topic), expected, topic)
        data = await self.ok(self.b, "/api/send-to-user", {"user-id": "y", "message": {"type": "m"}})
        self.assertEqual(data, {"delivered": 0})
        data = await self.ok(self.b, "/api/broadcast", {"message": {"type": "b"}})
        self.assertEqual(data, {"delivered": 1})
        await self.expect(wa, "b")
        await self.eventually(lambda: asyncio.to_thread(self.cluster.command, key, "EXISTS", key),
                              lambda v: v == 0, timeout=6, what="node-c heartbeat expiry")
        self.assertLess(time.monotonic() - t0, 8)
        await self.quiet(wa)


class RedisClusterSlotMigrationTest(RedisClusterTestCase):

    def migrate_slot(self, slot: int, src, dst):
        """Moves an empty slot from master `src` to master `dst` the way redis-cli does."""
        src_id = src.command("CLUSTER", "MYID")
        dst_id = dst.command("CLUSTER", "MYID")
        self.assertEqual(src.command("CLUSTER", "COUNTKEYSINSLOT", slot), 0)
        self.assertEqual(dst.command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id), "OK")
        self.assertEqual(src.command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id), "OK")
        for node in [dst, src] + [n for n in self.cluster.nodes if n not in (src, dst)]:
            self.assertEqual(node.command("CLUSTER", "SETSLOT", slot, "NODE", dst_id), "OK")

    @no_server
    async def test_subscriptions_and_publishes_follow_a_migrated_slot_without_reconnecting(self):
        topics = self.topics_on_every_shard("mig:")
        topic = next(t for t in topics
                     if self.cluster.master_for(f"rt:t:{t}").command(
                         "CLUSTER", "COUNTKEYSINSLOT", redis_key_slot(f"rt:t:{t}")) == 0)
        wa, _ = await self.join(self.a, "sa")
        wc, _ = await self.join(self.c, "sc")
        for ws in (wa, wc):
            reply = await self.command(ws, {"action": "subscribe", "topic": topic})
            self.assertEqual(reply["type"], "subscribed")
        data = await self.ok(self.b, "/api/publish", {"topic": topic, "message": {"type": "before"}})
        self.assertEqual(data, {"delivered": 2})
        for ws in (wa, wc):
            await self.expect(ws, "before")

        src = self.owner_index(topic)
        dst = (src + 1) % 3
        slot = redis_key_slot(f"rt:t:{topic}")
        await asyncio.to_thread(self.migrate_slot, slot, self.cluster.nodes[src], self.cluster.nodes[dst])
        self.assertEqual(self.owner_index(topic), dst)

        # The old owner dropped A's and C's subscriptions (sunsubscribe); they re-subscribe on
        # the new owner. B, which has no subscription there, still sends to the old owner and
        # follows its MOVED answer.
        expected = [0, 0, 0]
        expected[dst] = 2
        await self.eventually(lambda: self.shard_subscribers(topic), lambda v: v == expected, timeout=5,
                              what="subscriptions on the new owner")
        for i in range(3):
            data = await self.ok(self.b, "/api/publish", {"topic": topic, "message": {"type": "after", "i": i}})
            self.assertEqual(data, {"delivered": 2})
            for ws in (wa, wc):
                await self.expect(ws, "after", i=i)
        await self.quiet(wa, wc)
        for node in self.nodes:
            self.assertEqual(await asyncio.to_thread(node.metric, "realtime_redis_reconnects_total"), 0,
                             node.node_id)
            self.assertEqual((await asyncio.to_thread(node.health))[1].get("redis"), "up")


class RedisClusterConfigTest(RealtimeTestCase):

    @no_server
    def test_bad_cluster_url_is_refused_at_startup(self):
        import subprocess
        from rt_harness import SERVER, server_binary_available
        if not server_binary_available():
            self.skipTest("server binary not found")
        for url in ("redis-cluster://", "redis-cluster://127.0.0.1:7000,", "redis-cluster://127.0.0.1:7000/1",
                    "redis-cluster://127.0.0.1:0"):
            with self.subTest(url=url):
                r = subprocess.run([SERVER, "--port", "0", "--jwt-secret", random_secret(48),
                                    "--api-key", "k" * 32, "--redis", url],
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("--redis", r.stderr)


class RedisClusterPusherListingTest(RedisClusterTestCase):
    """GET /apps/<id>/channels (docs/pusher.md) on a Redis Cluster: the topic channels live on
    every shard, and a node lists the channels other nodes have subscribers for on all of them
    (PUBSUB SHARDCHANNELS on every master), with each channel's subscriptions counted cluster-wide.
    Signed as Pusher's server libraries sign (HMAC-SHA256 over method, path and sorted query)."""

    APP = ("pl-app", "pl-key", "pl-secret")
    NODE_ARGS = ClusterTestCase.NODE_ARGS + ["--pusher-app", ":".join(APP)]

    def channels(self, node, **params):
        import hashlib
        import hmac
        params = {**params, "auth_key": self.APP[1], "auth_timestamp": str(int(time.time())), "auth_version": "1.0"}
        path = f"/apps/{self.APP[0]}/channels"
        query = "&".join(f"{k}={params[k]}" for k in sorted(params))
        signature = hmac.new(self.APP[2].encode(), f"GET\n{path}\n{query}".encode(), hashlib.sha256).hexdigest()
        return node.api_sync("GET", f"{path}?{query}&auth_signature={signature}", key=None)

    @no_server
    async def test_channels_on_every_shard_are_listed_through_any_node(self):
        topics = self.topics_on_every_shard("pl-")
        self.assertEqual(len({redis_key_slot(f"rt:t:{t}") for t in topics}), 3)
        on_b, _ = await self.join(self.b, "u1")
        on_c, _ = await self.join(self.c, "u2")
        for topic in topics:
            for ws in (on_b, on_c):
                reply = await self.command(ws, {"action": "subscribe", "topic": topic})
                self.assertEqual(reply["type"], "subscribed", reply)
        # Node a has no subscriber: every name comes from the shards.
        expected = {"channels": {t: {"subscription_count": 2} for t in topics}}
        status, data = await asyncio.to_thread(self.channels, self.a, filter_by_prefix="pl-",
                                               info="subscription_count")
        self.assertEqual((status, data), (200, expected))
        status, data = await asyncio.to_thread(self.channels, self.a, filter_by_prefix=topics[1])
        narrowed = {t: {} for t in topics if t.startswith(topics[1])}
        self.assertEqual((status, data), (200, {"channels": narrowed}))
        reply = await self.command(on_b, {"action": "unsubscribe", "topic": topics[2]})
        self.assertEqual(reply["type"], "unsubscribed", reply)
        expected["channels"][topics[2]] = {"subscription_count": 1}
        status, data = await asyncio.to_thread(self.channels, self.a, filter_by_prefix="pl-",
                                               info="subscription_count")
        self.assertEqual((status, data), (200, expected))


class WebhookReceiver:
    """An HTTP server on loopback collecting webhook POST bodies (answers 200)."""

    def __init__(self):
        import http.server
        import threading
        received = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, name: str, channel: str) -> int:
        return sum(1 for b in list(self.bodies) for e in b["events"] if e["name"] == name and e["channel"] == channel)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class RedisClusterPusherWebhookTest(RedisClusterTestCase):
    """Pusher webhooks on a Redis Cluster (docs/pusher.md, "Webhooks"): the claim sets live on the
    channels' shards, the instances and their indexes elsewhere. Channels on every shard, held by
    one node that is killed with SIGKILL, are vacated once by a surviving node's sweep."""

    APP = ("wh-app", "wh-key", "wh-secret")

    def setUp(self):
        self.hooks = WebhookReceiver()
        self.addCleanup(self.hooks.close)
        self.NODE_ARGS = ClusterTestCase.NODE_ARGS + ["--pusher-app", ":".join(self.APP) + ":" + self.hooks.url]
        super().setUp()

    async def wait_for(self, what, probe, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not probe():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}: {self.hooks.bodies}")
            await asyncio.sleep(0.1)

    @no_server
    async def test_a_killed_nodes_channels_on_every_shard_are_vacated_once(self):
        topics = self.topics_on_every_shard("wh-")
        ws, _ = await self.join(self.b, "u1")
        for topic in topics:
            reply = await self.command(ws, {"action": "subscribe", "topic": topic})
            self.assertEqual(reply["type"], "subscribed", reply)
        await self.wait_for("channel_occupied on every shard",
                            lambda: all(self.hooks.count("channel_occupied", t) == 1 for t in topics))
        self.b.killed = True
        self.b.kill()
        await self.wait_for("channel_vacated on every shard",
                            lambda: all(self.hooks.count("channel_vacated", t) >= 1 for t in topics))
        # Swept once: a marker channel's webhooks come after any repeat would have.
        marker, _ = await self.join(self.a, "u2")
        reply = await self.command(marker, {"action": "subscribe", "topic": "wh-marker"})
        self.assertEqual(reply["type"], "subscribed", reply)
        await self.wait_for("the marker", lambda: self.hooks.count("channel_occupied", "wh-marker") == 1)
        await asyncio.sleep(1.5)  # a second sweep would come with a later beat
        for t in topics:
            self.assertEqual(self.hooks.count("channel_vacated", t), 1, t)
        # Once swept, the killed node's instance is gone: node a's, node c's and the "last" beat.
        self.assertEqual(self.cluster.master_for("rt:wn").command("ZCARD", "rt:wn"), 3)


if __name__ == "__main__":
    unittest.main()
