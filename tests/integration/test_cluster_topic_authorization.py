"""Topic authorization in cluster mode: two real nodes over a real Redis, with
--subscribe-policy claims and with --subscribe-proxy. Each node decides the subscribes of its own
connections (the proxy is asked by the node the client is connected to); messages published
through the other node reach exactly the connections that were allowed."""

import secrets
import unittest
import urllib.parse

import websockets.client

from rt_harness import DEFAULT_TIMEOUT, HOST, RedisProcess, ServerProcess, no_server, random_secret
from test_cluster import ClusterTestCase
from test_topic_authorization import Backend, decide


class TwoNodeCase(ClusterTestCase):
    NODES = ("node-a", "node-b")

    def setUp(self):
        self.extra_setup()
        self.server = None
        self.redis = RedisProcess().start()
        self.addCleanup(self.redis.remove_log)
        self.addCleanup(self.redis.stop)
        self.secret = random_secret(48)
        self.key = secrets.token_hex(16)
        self.nodes = [self.start_node(n) for n in self.NODES]
        self.a, self.b = self.nodes

    def extra_setup(self):
        pass

    async def join_claims(self, node: ServerProcess, user_id: str, **claims):
        token = node.token(user_id, None, **claims)
        uri = f"ws://{HOST}:{node.port}/ws?token={urllib.parse.quote(token, safe='')}"
        ws = await websockets.client.connect(uri, max_queue=None, open_timeout=DEFAULT_TIMEOUT,
                                             close_timeout=2)
        self.addAsyncCleanup(self._close_ws, ws)
        hello = await self.recv_json(ws)
        self.assertEqual(hello["type"], "connected")
        return ws, hello["connection-id"]

    async def subscribe(self, ws, topic):
        return await self.command(ws, {"action": "subscribe", "topic": topic})

    def assert_subscribed(self, reply, topic):
        self.assertEqual(reply, {"type": "subscribed", "topic": topic})

    def assert_forbidden(self, reply):
        self.assertEqual(reply.get("type"), "error", reply)
        self.assertEqual(reply.get("code"), "forbidden", reply)

    async def publish(self, node, topic, n):
        return await self.ok(node, "/api/publish", {"topic": topic, "message": {"type": "m", "n": n}})


class ClusterClaimsPolicyTest(TwoNodeCase):
    NODE_ARGS = ClusterTestCase.NODE_ARGS + ["--subscribe-policy", "claims"]

    @no_server
    async def test_claims_decide_on_each_node_and_messages_cross_nodes(self):
        alice, _ = await self.join_claims(self.a, "alice", topics=["order:*"])
        bob, _ = await self.join_claims(self.b, "bob", topics=["chat:**"])
        self.assert_subscribed(await self.subscribe(alice, "order:1"), "order:1")
        self.assert_forbidden(await self.subscribe(alice, "chat:x"))
        self.assert_subscribed(await self.subscribe(bob, "chat:x"), "chat:x")
        self.assert_forbidden(await self.subscribe(bob, "order:1"))
        self.assert_forbidden(await self.subscribe(bob, "user:alice"))

        # Published through the node the subscriber is NOT on: exactly the allowed one receives.
        self.assertEqual(await self.publish(self.b, "order:1", 1), {"delivered": 1})
        self.assertEqual((await self.expect(alice, "m"))["n"], 1)
        self.assertEqual(await self.publish(self.a, "chat:x", 2), {"delivered": 1})
        self.assertEqual((await self.expect(bob, "m"))["n"], 2)
        await self.quiet(alice, bob)


class ClusterProxyPolicyTest(TwoNodeCase):
    def extra_setup(self):
        self.backend = Backend(decide)
        self.addCleanup(self.backend.stop)
        self.NODE_ARGS = ClusterTestCase.NODE_ARGS + ["--subscribe-proxy", self.backend.url,
                                                      "--proxy-timeout", "2000"]

    @no_server
    async def test_each_node_asks_the_backend_for_its_own_connections(self):
        alice, alice_id = await self.join_claims(self.a, "alice")
        bob, bob_id = await self.join_claims(self.b, "bob")
        self.assert_subscribed(await self.subscribe(alice, "ok:room"), "ok:room")
        self.assert_forbidden(await self.subscribe(bob, "no:room"))
        self.assert_subscribed(await self.subscribe(bob, "ok:room"), "ok:room")
        asked = [(r["json"]["user-id"], r["json"]["connection-id"], r["json"]["topic"])
                 for r in self.backend.requests]
        self.assertEqual(asked, [("alice", alice_id, "ok:room"), ("bob", bob_id, "no:room"),
                                 ("bob", bob_id, "ok:room")])
        for r in self.backend.requests:
            self.assertEqual(r["auth"], f"Bearer {self.key}")

        self.assertEqual(await self.publish(self.a, "ok:room", 1), {"delivered": 2})
        for ws in (alice, bob):
            self.assertEqual((await self.expect(ws, "m"))["n"], 1)
        self.assertEqual(await self.publish(self.b, "no:room", 2), {"delivered": 0})
        await self.quiet(alice, bob)
        # Each node counts the decisions it asked for.
        self.assertEqual(self.a.metric("realtime_subscribe_proxy_allowed_total"), 1)
        self.assertEqual(self.b.metric("realtime_subscribe_proxy_allowed_total"), 1)
        self.assertEqual(self.b.metric("realtime_subscribe_proxy_denied_total"), 1)


if __name__ == "__main__":
    unittest.main()
