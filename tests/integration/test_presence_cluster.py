"""Presence in cluster mode (docs/presence.md, "Cluster mode"): three real nodes on one real
Redis, then on a real 3-master Redis Cluster. A user is present cluster-wide while any of their
connections on any node is subscribed; joins and leaves reach the topic's subscribers on every
node once; listings and counts are the same through every node; a node killed with SIGKILL has
its users leave within 10 s, announced once; a node stopped cleanly has them leave at once; the
keys live where docs/presence.md says (on a Redis Cluster, on the shard of the topic's channel);
and when Redis loses them the nodes send their users again. Python `websockets` clients."""

import asyncio
import json
import time
import urllib.parse

import websockets.client

from rt_harness import DEFAULT_TIMEOUT, HOST, no_server, redis_key_slot
from test_cluster import ClusterTestCase
from test_presence import follow_listing
from test_redis_cluster import RedisClusterTestCase

PRESENCE_ARGS = ["--presence", "room:**", "--commands-per-second", "0", "--cluster-reply-timeout", "1000"]


class PresenceClusterTestCase(ClusterTestCase):
    NODE_ARGS = PRESENCE_ARGS

    async def member(self, node, user, topic="room:1", info=None, skip_events=True):
        """A connection of `user` on `node`, subscribed to `topic`. In cluster mode other users'
        events may come before the `subscribed` reply (skip_events: skip them)."""
        claims = {} if info is None else {"info": info}
        ws, _ = await self.join_with(node, user, **claims)
        reply = await self.command(ws, {"action": "subscribe", "topic": topic})
        while skip_events and reply["type"] in ("presence-join", "presence-leave"):
            reply = await self.recv_json(ws)
        self.assertEqual(reply["type"], "subscribed", reply)
        return ws

    async def join_with(self, node, user, **claims):
        token = node.token(user, **claims)
        uri = f"ws://{HOST}:{node.port}/ws?token={urllib.parse.quote(token, safe='')}"
        ws = await websockets.client.connect(uri, max_queue=None, open_timeout=DEFAULT_TIMEOUT, close_timeout=2)
        self.addAsyncCleanup(self._close_ws, ws)
        hello = await self.recv_json(ws)
        self.assertEqual(hello["type"], "connected")
        return ws, hello["connection-id"]

    async def events(self, ws, n, timeout=DEFAULT_TIMEOUT):
        """The next n messages, as (type, user-id); presence events only."""
        out = []
        for _ in range(n):
            m = await self.recv_json(ws, timeout)
            self.assertIn(m["type"], ("presence-join", "presence-leave"), m)
            out.append((m["type"], m["user-id"]))
        return out

    async def listing(self, node, topic="room:1"):
        data = await self.ok(node, f"/api/presence?topic={topic}", method="GET")
        return {u["user-id"]: u for u in data["users"]}

    async def stats(self, node, topic="room:1"):
        return await self.ok(node, f"/api/presence-stats?topic={topic}", method="GET")

    async def wait_listing(self, node, expected, topic="room:1", timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            got = set(await self.listing(node, topic))
            if got == expected or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.1)


class PresenceClusterTests:
    """Run on one Redis and on a Redis Cluster."""

    @no_server
    async def test_joins_and_leaves_reach_subscribers_on_every_node(self):
        alice = await self.member(self.a, "alice", info={"name": "Alice"})
        self.assertEqual(await self.events(alice, 1), [("presence-join", "alice")])
        bob = await self.member(self.b, "bob")
        # A join is made in Redis once the node's subscription is in effect: wait for it.
        self.assertEqual(await self.events(alice, 1), [("presence-join", "bob")])
        self.assertEqual(await self.events(bob, 1), [("presence-join", "bob")])
        carol = await self.member(self.c, "carol")
        self.assertEqual(await self.events(alice, 1), [("presence-join", "carol")])
        self.assertEqual(await self.events(bob, 1), [("presence-join", "carol")])
        self.assertEqual(await self.events(carol, 1), [("presence-join", "carol")])
        # info travels with the join, across nodes.
        listed = await self.command(carol, {"action": "presence", "topic": "room:1"})
        self.assertEqual(listed["type"], "presence", listed)
        users = {u["user-id"]: u for u in listed["users"]}
        self.assertEqual(set(users), {"alice", "bob", "carol"})
        self.assertEqual(users["alice"]["info"], {"name": "Alice"})
        self.assertEqual(users["bob"]["info"], {})
        self.assertFalse(listed["truncated"])
        await bob.close()
        for ws in (alice, carol):
            self.assertEqual(await self.events(ws, 1), [("presence-leave", "bob")])
        await self.quiet(alice, carol)

    @no_server
    async def test_a_user_on_two_nodes_joins_once_and_leaves_with_the_last_connection(self):
        watcher = await self.member(self.c, "watcher")
        self.assertEqual(await self.events(watcher, 1), [("presence-join", "watcher")])
        on_a = await self.member(self.a, "dana")
        self.assertEqual(await self.events(watcher, 1), [("presence-join", "dana")])
        on_b = await self.member(self.b, "dana")
        await self.quiet(watcher, duration=0.5)  # a second connection, on another node: no join
        self.assertEqual((await self.listing(self.c))["dana"]["connections"], 2)
        self.assertEqual(await self.stats(self.a), {"users": 2, "connections": 3})
        await on_a.close()
        await self.quiet(watcher, duration=0.5)  # dana is still here through node B
        self.assertEqual((await self.listing(self.b))["dana"]["connections"], 1)
        await on_b.close()
        self.assertEqual(await self.events(watcher, 1), [("presence-leave", "dana")])
        self.assertEqual(await self.stats(self.b), {"users": 1, "connections": 1})

    @no_server
    async def test_listing_and_counts_are_the_same_through_every_node(self):
        for node, user in ((self.a, "u1"), (self.a, "u2"), (self.b, "u3")):
            await self.member(node, user, "room:count")
        self.assertEqual(await self.wait_listing(self.a, {"u1", "u2", "u3"}, "room:count"), {"u1", "u2", "u3"})
        for node in self.nodes:  # node C has nobody on the topic
            self.assertEqual(set(await self.listing(node, "room:count")), {"u1", "u2", "u3"})
            self.assertEqual(await self.stats(node, "room:count"), {"users": 3, "connections": 3})
        empty = await self.stats(self.c, "room:nobody")
        self.assertEqual(empty, {"users": 0, "connections": 0})

    @no_server
    async def test_sigkill_of_a_node_makes_its_users_leave_within_10s_once(self):
        watcher_b = await self.member(self.b, "wb", "room:kill", skip_events=True)
        watcher_c = await self.member(self.c, "wc", "room:kill", skip_events=True)
        await self.member(self.a, "victim", "room:kill", skip_events=True)
        await self.member(self.a, "shared", "room:kill", skip_events=True)
        shared_b = await self.member(self.b, "shared", "room:kill", skip_events=True)  # also on B: stays
        expected = {"wb", "wc", "victim", "shared"}
        self.assertEqual(await self.wait_listing(self.c, expected, "room:kill"), expected)
        for ws in (watcher_b, watcher_c, shared_b):
            while True:  # drain the joins
                try:
                    await asyncio.wait_for(ws.recv(), 0.5)
                except asyncio.TimeoutError:
                    break
        self.a.killed = True
        killed_at = time.monotonic()
        self.a.kill()
        for ws in (watcher_b, watcher_c, shared_b):
            m = await self.recv_json(ws, timeout=12)
            took = time.monotonic() - killed_at
            self.assertEqual((m["type"], m["user-id"]), ("presence-leave", "victim"), m)
            self.assertLess(took, 10.5, "a dead node's users leave within 10 s")
        # Exactly once: no second leave from the other survivor, no leave for `shared`.
        await self.quiet(watcher_b, watcher_c, shared_b, duration=2.0)
        self.assertEqual(set(await self.listing(self.c, "room:kill")), {"wb", "wc", "shared"})
        self.assertEqual((await self.listing(self.b, "room:kill"))["shared"]["connections"], 1)
        self.assertEqual(await self.stats(self.b, "room:kill"), {"users": 3, "connections": 3})

    @no_server
    async def test_a_node_stopped_cleanly_has_its_users_leave_at_once_and_restarts_clean(self):
        watcher = await self.member(self.b, "watcher", "room:stop")
        self.assertEqual(await self.events(watcher, 1), [("presence-join", "watcher")])
        await self.member(self.a, "leaver", "room:stop")
        self.assertEqual(await self.events(watcher, 1), [("presence-join", "leaver")])
        node = self.nodes[0]
        stopped_at = time.monotonic()
        self.assertEqual(await asyncio.to_thread(node.stop), 0, node.log())
        self.assertEqual(await self.events(watcher, 1), [("presence-leave", "leaver")])
        # Well before an instance expires (5 s): the node withdrew its users as it stopped.
        self.assertLess(time.monotonic() - stopped_at, 4.5)
        node.remove_log()
        again = await asyncio.to_thread(self.start_node, node.node_id)  # the same node id
        self.nodes[0] = self.a = again
        self.assertEqual(set(await self.listing(again, "room:stop")), {"watcher"})
        await self.member(again, "back", "room:stop")
        self.assertEqual(await self.events(watcher, 1), [("presence-join", "back")])
        await self.quiet(watcher, duration=0.5)

    @no_server
    async def test_list_then_events_stays_exact_while_users_come_and_go_on_other_nodes(self):
        watcher = await self.member(self.b, "watcher", "room:busy")

        async def churn(i):
            node = (self.a, self.c)[i % 2]
            ws = await self.member(node, f"c{i % 7}", "room:busy", skip_events=True)
            if i % 3:
                await ws.close()
        task = asyncio.gather(*(churn(i) for i in range(40)))
        await asyncio.sleep(0.05)
        await watcher.send(json.dumps({"action": "presence", "topic": "room:busy"}))
        await task
        present = await follow_listing(self, watcher, quiet=1.0, within=5)
        self.assertEqual(present, set(await self.listing(self.a, "room:busy")))

    @no_server
    async def test_when_redis_loses_the_keys_the_nodes_send_their_users_again(self):
        await self.member(self.a, "x", "room:flush")
        await self.member(self.b, "y", "room:flush")
        self.assertEqual(await self.wait_listing(self.c, {"x", "y"}, "room:flush"), {"x", "y"})
        self.flush_redis()
        self.assertEqual(await self.wait_listing(self.c, {"x", "y"}, "room:flush"), {"x", "y"})
        self.assertEqual(await self.stats(self.c, "room:flush"), {"users": 2, "connections": 2})

    @no_server
    async def test_metrics_count_this_nodes_part(self):
        await self.member(self.a, "m1", "room:m")
        await self.member(self.a, "m2", "room:m")
        await self.member(self.b, "m3", "room:m")
        await self.member(self.b, "m3", "room:other")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            a, b = self.a.metrics(), self.b.metrics()
            if a.get("realtime_presence_users") == 2 and b.get("realtime_presence_users") == 2:
                break
            await asyncio.sleep(0.1)
        self.assertEqual((a.get("realtime_presence_topics"), a.get("realtime_presence_users")), (1, 2))
        self.assertEqual((b.get("realtime_presence_topics"), b.get("realtime_presence_users")), (2, 2))


class PresenceOneRedisTest(PresenceClusterTests, PresenceClusterTestCase):

    def flush_redis(self):
        self.redis.command("FLUSHALL")

    @no_server
    async def test_keys_are_those_the_docs_name(self):
        await self.member(self.a, "k", "room:keys")
        self.assertEqual(await self.wait_listing(self.b, {"k"}, "room:keys"), {"k"})
        keys = set(self.redis.command("KEYS", "rt:p*"))
        tagged = [k for k in keys if k.endswith("}room:keys") or "}room:keys:" in k]
        kinds = sorted(k.split(":")[1] for k in tagged)
        self.assertEqual(kinds, ["pc", "pi", "pm", "pn", "pv"], keys)
        tag = next(k for k in tagged if k.startswith("rt:pc:"))[len("rt:pc:{"):].split("}")[0]
        self.assertEqual(redis_key_slot(tag), redis_key_slot("rt:t:room:keys"))
        pc = next(k for k in tagged if k.startswith("rt:pc:"))
        self.assertEqual(self.redis.command("HGETALL", pc), ["k", "1"])
        self.assertGreater(self.redis.command("PTTL", pc), 0, "the keys expire when nobody keeps them")


class PresenceRedisClusterTest(PresenceClusterTests, RedisClusterTestCase, PresenceClusterTestCase):

    def flush_redis(self):
        for n in self.cluster.nodes:
            n.command("FLUSHALL")

    @no_server
    async def test_topics_on_every_shard_and_keys_on_the_topics_shard(self):
        topics = self.topics_on_every_shard("room:s")
        watcher = {}
        for t in topics:
            watcher[t] = await self.member(self.c, "w", t)
            self.assertEqual(await self.events(watcher[t], 1), [("presence-join", "w")])
            await self.member(self.a, "p", t)
        for i, t in enumerate(topics):
            owner = self.cluster.nodes[i]
            keys = owner.command("KEYS", f"rt:pc:*{t}")
            self.assertEqual(len(keys), 1, (t, keys))
            self.assertEqual(owner.command("HGET", keys[0], "p"), "1")
            self.assertEqual(set(await self.listing(self.b, t)), {"w", "p"})
            self.assertEqual(await self.events(watcher[t], 1), [("presence-join", "p")])
