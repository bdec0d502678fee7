"""History and recovery in cluster mode (docs/history.md, "Cluster mode"): three real nodes on one
real Redis, then on a real 3-master Redis Cluster. Offsets are assigned in Redis, so they are the
same whichever node a message goes through; recovery works on any node, across a node restart
(SIGTERM and SIGKILL) and while another process publishes through another node; the epoch changes
when Redis loses the stream; the keys live where docs/history.md says (on a Redis Cluster, on the
shard of the topic's channel)."""

import asyncio
import json
import os
import subprocess
import sys
import time

import websockets.exceptions

from rt_harness import DEFAULT_TIMEOUT, HERE, no_server
from test_cluster import ClusterTestCase
from test_redis_cluster import RedisClusterTestCase

HISTORY_ARGS = ["--history", "chat:**=100000,small:**=3,brief:**=10/1", "--publish-patterns", "chat:**",
                "--commands-per-second", "0", "--cluster-reply-timeout", "1000",
                "--max-outbound-bytes", "16777216"]


class HistoryClusterTestCase(ClusterTestCase):
    NODE_ARGS = HISTORY_ARGS

    async def publish(self, node, topic, n=1, **extra):
        offsets = []
        for i in range(n):
            data = await self.ok(node, "/api/publish", {"topic": topic, "message": {"type": "note", "i": i, **extra}})
            offsets.append(data["offset"])
        return offsets

    async def subscribe(self, ws, topic, recover=None):
        cmd = {"action": "subscribe", "topic": topic}
        if recover is not None:
            cmd["recover"] = recover
        reply = await self.command(ws, cmd)
        self.assertEqual(reply["type"], "subscribed", reply)
        return reply

    async def offsets_of(self, ws, count, mtype="note"):
        out = []
        for _ in range(count):
            m = await self.recv_json(ws)
            self.assertEqual(m["type"], mtype, m)
            out.append(m["offset"])
        return out


class SharedOffsetsTest(HistoryClusterTestCase):

    @no_server
    async def test_offsets_are_the_same_through_every_node(self):
        subs = []
        epochs = set()
        for node, user in zip(self.nodes, ("sa", "sb", "sc")):
            ws, _ = await self.join(node, user)
            reply = await self.subscribe(ws, "chat:room")
            self.assertEqual(reply["offset"], 0)
            epochs.add(reply["epoch"])
            subs.append(ws)
        self.assertEqual(len(epochs), 1, "one epoch, kept in Redis")
        # Through A, B, C in turn: one sequence.
        offsets = []
        for i in range(9):
            node = self.nodes[i % 3]
            data = await self.ok(node, "/api/publish", {"topic": "chat:room", "message": {"type": "note", "i": i}})
            self.assertEqual(data["delivered"], 3, data)
            offsets.append(data["offset"])
        self.assertEqual(offsets, list(range(1, 10)))
        for ws in subs:
            got = [await self.recv_json(ws) for _ in range(9)]
            self.assertEqual([m["offset"] for m in got], list(range(1, 10)))
            self.assertEqual([m["i"] for m in got], list(range(9)))
        await self.quiet(*subs)

    @no_server
    async def test_websocket_publish_on_one_node_gets_the_shared_offset(self):
        pub, _ = await self.join(self.a, "p")
        sub, _ = await self.join(self.b, "s")
        await self.subscribe(sub, "chat:ws")
        await self.publish(self.c, "chat:ws", 2)
        reply = await self.command(pub, {"action": "publish", "topic": "chat:ws", "ref": 1,
                                         "message": {"type": "note"}})
        self.assertEqual((reply["type"], reply["offset"], reply["delivered"]), ("published", 3, 1), reply)
        self.assertEqual(await self.offsets_of(sub, 3), [1, 2, 3])

    @no_server
    async def test_fire_and_forget_publish_answers_the_offset(self):
        sub, _ = await self.join(self.c, "s")
        await self.subscribe(sub, "chat:ff")
        await self.publish(self.a, "chat:ff")
        data = await self.ok(self.b, "/api/publish", {"topic": "chat:ff", "wait": False, "message": {"type": "note"}})
        self.assertEqual(data, {"delivered": None, "queued": True, "offset": 2})
        self.assertEqual(await self.offsets_of(sub, 2), [1, 2])

    @no_server
    async def test_subscriber_on_the_publishing_node_gets_offsets_in_order(self):
        # The publishing node delivers from its Redis subscription like every other node, so its
        # own subscribers see one order with messages published through the others.
        local, _ = await self.join(self.a, "l")
        await self.subscribe(local, "chat:mix")

        def burst(node, n):
            for i in range(n):
                status, data = node.api_sync("POST", "/api/publish",
                                             {"topic": "chat:mix", "message": {"type": "note", "i": i}})
                assert status == 200, (status, data)

        await asyncio.gather(asyncio.to_thread(burst, self.a, 100), asyncio.to_thread(burst, self.b, 100))
        self.assertEqual(await self.offsets_of(local, 200), list(range(1, 201)))
        await self.quiet(local)

    @no_server
    async def test_startup_line_says_history_is_in_redis(self):
        self.assertIn("history=chat:**=100000,small:**=3,brief:**=10/1 store=redis", self.a.log())

    @no_server
    async def test_keys_are_those_the_docs_name(self):
        await self.publish(self.a, "chat:k", 2)
        keys = sorted(await asyncio.to_thread(self.redis.command, "KEYS", "rt:h*"))
        self.assertEqual(len(keys), 2, keys)
        meta = next(k for k in keys if k.startswith("rt:h:{"))
        lst = next(k for k in keys if k.startswith("rt:hl:{"))
        self.assertTrue(meta.endswith("}chat:k") and lst.endswith("}chat:k"), keys)
        self.assertEqual(await asyncio.to_thread(self.redis.command, "HGET", meta, "last"), "2")
        entries = await asyncio.to_thread(self.redis.command, "LRANGE", lst, "0", "-1")
        self.assertEqual(len(entries), 2)
        ms, text = entries[1].split(" ", 1)
        self.assertTrue(ms.isdigit())
        self.assertEqual(json.loads(text)["offset"], 2)
        ttl = await asyncio.to_thread(self.redis.command, "PTTL", meta)
        self.assertTrue(0 < ttl <= 300_000, ttl)


class ClusterRecoverTest(HistoryClusterTestCase):

    @no_server
    async def test_recover_on_another_node_replays_the_gap_then_live(self):
        ws, _ = await self.join(self.a, "u")
        epoch = (await self.subscribe(ws, "chat:r"))["epoch"]
        await self.publish(self.b, "chat:r", 3)
        self.assertEqual(await self.offsets_of(ws, 3), [1, 2, 3])
        await ws.close()
        await self.publish(self.c, "chat:r", 4)  # 4..7 while away
        ws2, _ = await self.join(self.b, "u")
        reply = await self.subscribe(ws2, "chat:r", {"offset": 3, "epoch": epoch})
        self.assertEqual((reply["recovered"], reply["offset"], reply["epoch"]), (True, 7, epoch))
        self.assertEqual(await self.offsets_of(ws2, 4), [4, 5, 6, 7])
        await self.publish(self.a, "chat:r")
        self.assertEqual(await self.offsets_of(ws2, 1), [8])
        await self.quiet(ws2)

    @no_server
    async def test_not_recovered_when_epoch_differs_or_gap_is_gone(self):
        ws, _ = await self.join(self.a, "u")
        epoch = (await self.subscribe(ws, "small:r"))["epoch"]  # SIZE 3
        await self.publish(self.b, "small:r", 6)
        ws2, _ = await self.join(self.c, "u")
        lost = await self.subscribe(ws2, "small:r", {"offset": 2, "epoch": epoch})
        self.assertEqual((lost["recovered"], lost["offset"]), (False, 6))
        ws3, _ = await self.join(self.b, "u")
        kept = await self.subscribe(ws3, "small:r", {"offset": 3, "epoch": epoch})
        self.assertEqual(kept["recovered"], True)
        self.assertEqual(await self.offsets_of(ws3, 3), [4, 5, 6])
        ws4, _ = await self.join(self.a, "u")
        other = await self.subscribe(ws4, "small:r", {"offset": 5, "epoch": "not-the-epoch"})
        self.assertEqual((other["recovered"], other["offset"]), (False, 6))
        ahead = await self.subscribe(ws4, "small:r", {"offset": 9, "epoch": epoch})
        self.assertEqual(ahead["recovered"], False)
        await self.publish(self.c, "small:r")
        for w in (ws2, ws3, ws4):
            self.assertEqual(await self.offsets_of(w, 1), [7])

    @no_server
    async def test_history_action_and_api_on_every_node(self):
        await self.publish(self.a, "chat:h", 5)
        pages = []
        for node, user in zip(self.nodes, ("x", "y", "z")):
            ws, _ = await self.join(node, user)
            page = await self.command(ws, {"action": "history", "topic": "chat:h", "since": 1, "limit": 2})
            self.assertEqual(page["type"], "history", page)
            self.assertEqual(([m["offset"] for m in page["messages"]], page["offset"]), ([2, 3], 5))
            data = await self.ok(node, "/api/history?topic=chat:h&since=3", method="GET")
            self.assertEqual([m["offset"] for m in data["messages"]], [4, 5])
            pages.append(page["epoch"])
            self.assertEqual(data["epoch"], page["epoch"])
        self.assertEqual(len(set(pages)), 1)

    @no_server
    async def test_size_is_kept_in_redis(self):
        await self.publish(self.b, "small:s", 10)
        data = await self.ok(self.c, "/api/history?topic=small:s", method="GET")
        self.assertEqual([m["offset"] for m in data["messages"]], [8, 9, 10])
        self.assertEqual(data["offset"], 10)

    @no_server
    async def test_ttl_expiry_in_redis_changes_the_epoch(self):
        ws, _ = await self.join(self.a, "u")
        epoch = (await self.subscribe(ws, "brief:t"))["epoch"]  # TTL 1 s
        await self.publish(self.b, "brief:t", 2)
        self.assertEqual(await self.offsets_of(ws, 2), [1, 2])
        await ws.close()
        await asyncio.sleep(1.5)
        data = await self.ok(self.c, "/api/history?topic=brief:t", method="GET")
        self.assertEqual((data["messages"], data["offset"], data["epoch"]), ([], 0, ""), data)
        ws2, _ = await self.join(self.c, "u")
        reply = await self.subscribe(ws2, "brief:t", {"offset": 2, "epoch": epoch})
        self.assertEqual(reply["recovered"], False)
        self.assertNotEqual(reply["epoch"], epoch)
        self.assertEqual(reply["offset"], 0)
        self.assertEqual(await self.publish(self.a, "brief:t"), [1])

    @no_server
    async def test_redis_losing_the_stream_changes_the_epoch(self):
        ws, _ = await self.join(self.a, "u")
        epoch = (await self.subscribe(ws, "chat:lost"))["epoch"]
        await self.publish(self.a, "chat:lost", 3)
        self.assertEqual(await self.offsets_of(ws, 3), [1, 2, 3])
        await asyncio.to_thread(self.redis.command, "FLUSHALL")
        self.assertEqual(await self.publish(self.b, "chat:lost"), [1])
        m = await self.recv_json(ws)
        self.assertEqual(m["offset"], 1)
        ws2, _ = await self.join(self.c, "u")
        reply = await self.subscribe(ws2, "chat:lost", {"offset": 3, "epoch": epoch})
        self.assertEqual(reply["recovered"], False)
        self.assertNotEqual(reply["epoch"], epoch)
        self.assertEqual(reply["offset"], 1)


def redis_connections_of(pid: int) -> set[int]:
    """Local TCP ports of the process's sockets (from /proc: no tools needed)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class OrderingTest(HistoryClusterTestCase):

    @no_server
    async def test_unsubscribe_right_after_subscribe_does_not_overtake_it(self):
        ws, _ = await self.join(self.a, "u")
        await ws.send(json.dumps({"action": "subscribe", "topic": "chat:o", "ref": 1}))
        await ws.send(json.dumps({"action": "unsubscribe", "topic": "chat:o", "ref": 2}))
        first, second = await self.recv_json(ws), await self.recv_json(ws)
        self.assertEqual((first["type"], first["ref"]), ("subscribed", 1), first)
        self.assertEqual((second["type"], second["ref"]), ("unsubscribed", 2), second)
        data = await self.ok(self.b, "/api/publish", {"topic": "chat:o", "message": {"type": "note"}})
        self.assertEqual(data["delivered"], 0, data)
        await self.quiet(ws)
        # Subscribe, unsubscribe, subscribe: subscribed in the end.
        for i, action in enumerate(("subscribe", "unsubscribe", "subscribe")):
            await ws.send(json.dumps({"action": action, "topic": "chat:o", "ref": 10 + i}))
        replies = [await self.recv_json(ws) for _ in range(3)]
        self.assertEqual([(r["type"], r["ref"]) for r in replies],
                         [("subscribed", 10), ("unsubscribed", 11), ("subscribed", 12)])
        data = await self.ok(self.b, "/api/publish", {"topic": "chat:o", "message": {"type": "note"}})
        self.assertEqual(data["delivered"], 1, data)
        self.assertEqual(await self.offsets_of(ws, 1), [data["offset"]])


class LostSubscriptionTest(HistoryClusterTestCase):

    @no_server
    async def test_a_node_that_missed_messages_makes_its_subscribers_recover(self):
        on_a, _ = await self.join(self.a, "ua")
        on_b, _ = await self.join(self.b, "ub")
        epoch = (await self.subscribe(on_a, "chat:gap"))["epoch"]
        await self.subscribe(on_b, "chat:gap")
        self.assertEqual(await self.publish(self.b, "chat:gap", 2), [1, 2])
        self.assertEqual(await self.offsets_of(on_a, 2), [1, 2])
        self.assertEqual(await self.offsets_of(on_b, 2), [1, 2])
        # Cut node A's Redis subscription (as a network cut or a Redis restart would) and
        # publish through B before A has subscribed again (it waits 100 ms first).
        ports = redis_connections_of(self.a.proc.pid)
        clients = (await asyncio.to_thread(self.redis.command, "CLIENT", "LIST")).splitlines()
        sub = [c for c in clients if " flags=P " in f" {c} " and
               int(c.split(" addr=")[1].split()[0].rsplit(":", 1)[1]) in ports]
        self.assertEqual(len(sub), 1, clients)
        client_id = sub[0].split()[0].split("=")[1]
        await asyncio.to_thread(self.redis.command, "CLIENT", "KILL", "ID", client_id)
        self.assertEqual(await self.publish(self.b, "chat:gap"), [3])  # A never hears of 3
        await self.eventually(lambda: asyncio.to_thread(lambda: self.a.health()[1]),
                              lambda h: h.get("redis") == "up", timeout=5, what="node-a back")
        self.assertEqual(await self.publish(self.b, "chat:gap"), [4])
        # A sees 4 after 2: its subscriber is closed (1012) instead of silently skipping 3.
        with self.assertRaises(websockets.exceptions.ConnectionClosed) as closed:
            while True:
                m = json.loads(await asyncio.wait_for(on_a.recv(), DEFAULT_TIMEOUT))
                self.assertNotEqual(m.get("offset"), 4, "delivered across the gap")
        self.assertEqual(closed.exception.rcvd.code, 1012)
        # Its client reconnects and recovers exactly; B's subscriber saw everything in order.
        again, _ = await self.join(self.a, "ua")
        reply = await self.subscribe(again, "chat:gap", {"offset": 2, "epoch": epoch})
        self.assertEqual((reply["recovered"], reply["offset"]), (True, 4))
        self.assertEqual(await self.offsets_of(again, 2), [3, 4])
        self.assertEqual(await self.offsets_of(on_b, 2), [3, 4])


class ReplayBoundTest(HistoryClusterTestCase):

    @no_server
    async def test_a_gap_over_ten_thousand_messages_is_not_replayed(self):
        ws, _ = await self.join(self.a, "u")
        epoch = (await self.subscribe(ws, "chat:long"))["epoch"]
        await ws.close()
        for start in range(0, 10_001, 1000):
            items = [{"kind": "publish", "topic": "chat:long", "message": {"type": "note", "i": i}}
                     for i in range(start, min(start + 1000, 10_001))]
            data = await self.ok(self.b, "/api/batch", items)
            self.assertEqual(len(data["results"]), len(items))
        ws2, _ = await self.join(self.c, "u")
        too_long = await self.subscribe(ws2, "chat:long", {"offset": 0, "epoch": epoch})
        self.assertEqual((too_long["recovered"], too_long["offset"]), (False, 10_001))
        ws3, _ = await self.join(self.c, "u")
        fits = await self.subscribe(ws3, "chat:long", {"offset": 1, "epoch": epoch})
        self.assertEqual(fits["recovered"], True)
        got = await self.offsets_of(ws3, 10_000)
        self.assertEqual(got, list(range(2, 10_002)))


class NodeRestartTest(HistoryClusterTestCase):

    async def restart(self, index, kill):
        node = self.nodes[index]
        if kill:
            node.killed = True
            node.kill()
        else:
            self.assertEqual(node.stop(), 0, node.log())
        node.remove_log()
        new = await asyncio.to_thread(self.start_node, node.node_id + "-2")
        self.nodes[index] = new
        return new

    @no_server
    async def test_history_survives_restarts_of_the_nodes(self):
        for kill in (False, True):
            with self.subTest(kill=kill):
                topic = f"chat:restart-{kill}"
                ws, _ = await self.join(self.a, "u")
                epoch = (await self.subscribe(ws, topic))["epoch"]
                await self.publish(self.a, topic, 4)
                self.assertEqual(await self.offsets_of(ws, 4), [1, 2, 3, 4])
                self.a = await self.restart(0, kill)  # its connections go with it
                await self.publish(self.b, topic, 2)  # 5, 6 while the client reconnects
                ws2, _ = await self.join(self.a, "u")
                reply = await self.subscribe(ws2, topic, {"offset": 4, "epoch": epoch})
                self.assertEqual((reply["recovered"], reply["epoch"], reply["offset"]), (True, epoch, 6))
                self.assertEqual(await self.offsets_of(ws2, 2), [5, 6])
                self.assertEqual(await self.publish(self.a, topic), [7])
                self.assertEqual(await self.offsets_of(ws2, 1), [7])


class ClusterConcurrentRecoverTest(HistoryClusterTestCase):

    @no_server
    async def test_recoveries_on_two_nodes_while_a_third_publishes_lose_and_repeat_nothing(self):
        publisher = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "history_publisher.py"), str(self.b.port),
             self.b.token("publisher"), "chat:busy"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(publisher.stderr.close)
        self.addCleanup(publisher.stdout.close)
        self.addCleanup(publisher.wait, 5)
        self.addCleanup(publisher.kill)
        line = await asyncio.wait_for(asyncio.to_thread(publisher.stdout.readline), DEFAULT_TIMEOUT)
        self.assertEqual(line.strip(), "started", publisher.stderr.read() if not line else line)
        seen = []
        last, epoch = 0, None
        for cycle in range(30):
            node = (self.a, self.c)[cycle % 2]
            ws, _ = await self.join(node, "reader")
            reply = await self.subscribe(ws, "chat:busy", {"offset": last, "epoch": epoch} if epoch else None)
            pending = []
            if epoch:
                self.assertEqual(reply["recovered"], True, f"cycle {cycle}: {reply}")
            else:
                await ws.send(json.dumps({"action": "history", "topic": "chat:busy", "since": 0, "limit": 1000}))
                while True:
                    page = await self.recv_json(ws)
                    if page["type"] == "history":
                        break
                    pending.append(page)
                self.assertEqual(page["messages"][0]["offset"], 1)
                for m in page["messages"]:
                    if m["offset"] <= reply["offset"]:
                        seen.append((m["offset"], m["n"]))
                last, epoch = reply["offset"], reply["epoch"]
            for _ in range(5 + cycle * 7 % 40):
                m = pending.pop(0) if pending else await self.recv_json(ws)
                self.assertEqual(m["type"], "tick", m)
                self.assertEqual(m["offset"], last + 1, f"cycle {cycle} on {node.node_id}")
                last = m["offset"]
                seen.append((m["offset"], m["n"]))
            await ws.close()
        self.assertIsNone(publisher.poll(), publisher.stderr.read() if publisher.poll() is not None else "")
        self.assertEqual([o for o, _ in seen], list(range(1, last + 1)))
        self.assertEqual([n for _, n in seen], list(range(1, last + 1)))


class RedisDownTest(HistoryClusterTestCase):

    @no_server
    async def test_without_redis_streams_deliver_locally_and_history_is_unavailable(self):
        ws, _ = await self.join(self.a, "u")
        await self.subscribe(ws, "chat:down")
        self.redis.stop()
        await self.eventually(lambda: asyncio.to_thread(lambda: self.a.health()[1]),
                              lambda h: h.get("redis") == "down", timeout=5, what="node-a sees redis down")
        status, data = await self.call(self.a, "/api/publish", {"topic": "chat:down", "message": {"type": "note"}})
        self.assertEqual((status, data), (503, {"error": "cluster unavailable", "delivered": 1}))
        m = await self.recv_json(ws)
        self.assertEqual(m["type"], "note")
        self.assertNotIn("offset", m)
        status, data = await self.call(self.a, "/api/history?topic=chat:down", method="GET")
        self.assertEqual(status, 503, data)
        self.assertGreaterEqual(await asyncio.to_thread(self.a.metric, "realtime_history_failures_total"), 2)


class RedisClusterHistoryTest(RedisClusterTestCase, HistoryClusterTestCase):
    """The same on a 3-master Redis Cluster (RedisClusterTestCase's setup, this file's node
    arguments): each stream's keys sit on its channel's shard."""

    def streams_on_every_shard(self):
        found = {}
        i = 0
        while len(found) < len(self.cluster.nodes):
            topic = f"chat:{{s{i}}}x" if i % 2 else f"chat:s{i}"  # with and without a hash tag
            found.setdefault(self.cluster.master_for(f"rt:t:{topic}").port, topic)
            i += 1
        return list(found.values())

    @no_server
    async def test_streams_on_every_shard_share_offsets_and_recover(self):
        for topic in self.streams_on_every_shard():
            with self.subTest(topic=topic):
                ws, _ = await self.join(self.a, "u")
                epoch = (await self.subscribe(ws, topic))["epoch"]
                offsets = [(await self.publish(node, topic))[0] for node in self.nodes]
                self.assertEqual(offsets, [1, 2, 3])
                self.assertEqual(await self.offsets_of(ws, 3), [1, 2, 3])
                # The keys are on the master owning the channel's slot.
                owner = self.cluster.master_for(f"rt:t:{topic}")
                keys = await asyncio.to_thread(owner.command, "KEYS", "rt:h*")
                self.assertIn(f"}}{topic}", " ".join(keys))
                for other in self.cluster.nodes:
                    if other is not owner:
                        self.assertEqual(await asyncio.to_thread(other.command, "KEYS", "rt:h*"
                                                                 + topic.replace("{", "\\{").replace("}", "\\}")), [])
                await ws.close()
                await self.publish(self.b, topic, 2)
                ws2, _ = await self.join(self.c, "u")
                reply = await self.subscribe(ws2, topic, {"offset": 3, "epoch": epoch})
                self.assertEqual((reply["recovered"], reply["offset"]), (True, 5))
                self.assertEqual(await self.offsets_of(ws2, 2), [4, 5])
                data = await self.ok(self.b, f"/api/history?topic={topic.replace('{', '%7B').replace('}', '%7D')}",
                                     method="GET")
                self.assertEqual([m["offset"] for m in data["messages"]], [1, 2, 3, 4, 5])
