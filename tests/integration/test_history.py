"""History and recovery on one node (docs/history.md, docs/protocol.md "History and recovery"):
offsets without gaps, the subscribed reply, exact recovery (also while another process keeps
publishing), recovered:false, the history action and GET /api/history, the SIZE, TTL and byte
limits, the metrics, and the options' errors."""

import asyncio
import json
import os
import subprocess
import sys
import time
import unittest

from rt_harness import (DEFAULT_TIMEOUT, HERE, SERVER, RealtimeTestCase, ServerProcess, free_port,
                        random_secret, server_args)

HISTORY = ["--history", "chat:**=100,small:**=3,brief:**=3/1", "--publish-patterns", "chat:**",
           "--commands-per-second", "0"]


class HistoryTestCase(RealtimeTestCase):
    SERVER_ARGS = HISTORY

    async def publish(self, topic, n=1, **extra):
        offsets = []
        for i in range(n):
            body = {"topic": topic, "message": {"type": "note", "i": i, **extra}}
            offsets.append((await self.api_ok("POST", "/api/publish", body))["offset"])
        return offsets

    async def subscribe(self, ws, topic, recover=None):
        cmd = {"action": "subscribe", "topic": topic}
        if recover is not None:
            cmd["recover"] = recover
        reply = await self.command(ws, cmd)
        self.assertEqual(reply["type"], "subscribed", reply)
        return reply

    async def offsets_of(self, ws, count):
        out = []
        for _ in range(count):
            m = await self.recv_json(ws)
            self.assertEqual(m["type"], "note", m)
            out.append(m["offset"])
        return out


class OffsetTest(HistoryTestCase):

    async def test_offsets_count_from_one_without_gaps(self):
        ws, _ = await self.connect()
        reply = await self.subscribe(ws, "chat:a")
        self.assertEqual(reply["offset"], 0)
        self.assertIsInstance(reply["epoch"], str)
        self.assertTrue(reply["epoch"])
        self.assertEqual(await self.publish("chat:a", 5), [1, 2, 3, 4, 5])
        self.assertEqual(await self.offsets_of(ws, 5), [1, 2, 3, 4, 5])

    async def test_streams_count_separately(self):
        await self.publish("chat:a", 3)
        self.assertEqual(await self.publish("chat:b", 2), [1, 2])

    async def test_websocket_publish_gets_an_offset(self):
        ws, _ = await self.connect()
        await self.subscribe(ws, "chat:a")
        await ws.send(json.dumps({"action": "publish", "topic": "chat:a", "message": {"type": "note"}}))
        # The reply and the publisher's own delivery (it is subscribed) come in either order.
        got = {m["type"]: m for m in [await self.recv_json(ws), await self.recv_json(ws)]}
        self.assertEqual(got["published"]["offset"], 1, got)
        self.assertEqual(got["note"]["offset"], 1, got)
        self.assertEqual(await self.publish("chat:a"), [2])

    async def test_topic_without_history_has_no_offset(self):
        ws, _ = await self.connect()
        reply = await self.subscribe(ws, "other")
        self.assertNotIn("offset", reply)
        data = await self.api_ok("POST", "/api/publish", {"topic": "other", "message": {"type": "note"}})
        self.assertEqual(data, {"delivered": 1})
        m = await self.recv_json(ws)
        self.assertNotIn("offset", m)
        ws2, _ = await self.connect()
        reply = await self.subscribe(ws2, "other", {"offset": 1, "epoch": "x"})
        self.assertEqual(reply["recovered"], False)
        self.assertNotIn("offset", reply)

    async def test_subscribed_reply_carries_last_offset_and_same_epoch(self):
        ws1, _ = await self.connect()
        first = await self.subscribe(ws1, "chat:a")
        await self.publish("chat:a", 3)
        ws2, _ = await self.connect()
        second = await self.subscribe(ws2, "chat:a")
        self.assertEqual(second["offset"], 3)
        self.assertEqual(second["epoch"], first["epoch"])
        self.assertNotIn("recovered", second)

    async def test_a_sender_offset_is_replaced(self):
        ws, _ = await self.connect()
        await self.subscribe(ws, "chat:a")
        data = await self.api_ok("POST", "/api/publish",
                                 {"topic": "chat:a", "message": {"type": "note", "offset": 99}})
        self.assertEqual(data["offset"], 1)
        self.assertEqual(await self.offsets_of(ws, 1), [1])


class RecoverTest(HistoryTestCase):

    async def test_recover_replays_the_gap_then_live(self):
        ws, _ = await self.connect()
        epoch = (await self.subscribe(ws, "chat:a"))["epoch"]
        await self.publish("chat:a", 3)
        self.assertEqual(await self.offsets_of(ws, 3), [1, 2, 3])
        await ws.close()
        await self.publish("chat:a", 4)  # 4..7 while away
        ws2, _ = await self.connect()
        reply = await self.subscribe(ws2, "chat:a", {"offset": 3, "epoch": epoch})
        self.assertEqual(reply["recovered"], True)
        self.assertEqual(reply["offset"], 7)
        self.assertEqual(reply["epoch"], epoch)
        self.assertEqual(await self.offsets_of(ws2, 4), [4, 5, 6, 7])
        await self.publish("chat:a")
        self.assertEqual(await self.offsets_of(ws2, 1), [8])
        await self.expect_silence(ws2)

    async def test_recover_at_last_offset_replays_nothing(self):
        ws, _ = await self.connect()
        epoch = (await self.subscribe(ws, "chat:a"))["epoch"]
        await self.publish("chat:a", 2)
        ws2, _ = await self.connect()
        reply = await self.subscribe(ws2, "chat:a", {"offset": 2, "epoch": epoch})
        self.assertEqual((reply["recovered"], reply["offset"]), (True, 2))
        await self.publish("chat:a")
        self.assertEqual(await self.offsets_of(ws2, 1), [3])

    async def test_recover_on_an_empty_stream_keeps_its_epoch(self):
        ws, _ = await self.connect()
        epoch = (await self.subscribe(ws, "chat:quiet"))["epoch"]
        await ws.close()
        await self.publish("chat:quiet", 2)
        ws2, _ = await self.connect()
        reply = await self.subscribe(ws2, "chat:quiet", {"offset": 0, "epoch": epoch})
        self.assertEqual(reply["recovered"], True)
        self.assertEqual(await self.offsets_of(ws2, 2), [1, 2])

    async def test_wrong_epoch_is_not_recovered(self):
        await self.publish("chat:a", 3)
        ws, _ = await self.connect()
        reply = await self.subscribe(ws, "chat:a", {"offset": 1, "epoch": "not-the-epoch"})
        self.assertEqual((reply["recovered"], reply["offset"]), (False, 3))
        await self.publish("chat:a")
        self.assertEqual(await self.offsets_of(ws, 1), [4])  # no replay before the live message

    async def test_offset_past_last_is_not_recovered(self):
        ws, _ = await self.connect()
        epoch = (await self.subscribe(ws, "chat:a"))["epoch"]
        await self.publish("chat:a", 2)
        ws2, _ = await self.connect()
        reply = await self.subscribe(ws2, "chat:a", {"offset": 5, "epoch": epoch})
        self.assertEqual(reply["recovered"], False)
        await self.publish("chat:a")
        self.assertEqual(await self.offsets_of(ws2, 1), [3])

    async def test_gap_no_longer_kept_is_not_recovered(self):
        ws, _ = await self.connect()
        epoch = (await self.subscribe(ws, "small:a"))["epoch"]  # SIZE 3
        await self.publish("small:a", 6)
        ws2, _ = await self.connect()
        lost = await self.subscribe(ws2, "small:a", {"offset": 2, "epoch": epoch})  # 3 is gone
        self.assertEqual((lost["recovered"], lost["offset"]), (False, 6))
        ws3, _ = await self.connect()
        kept = await self.subscribe(ws3, "small:a", {"offset": 3, "epoch": epoch})  # 4..6 kept
        self.assertEqual(kept["recovered"], True)
        self.assertEqual(await self.offsets_of(ws3, 3), [4, 5, 6])
        await self.publish("small:a")
        self.assertEqual(await self.offsets_of(ws2, 1), [7])

    async def test_bad_recover_is_a_bad_request(self):
        ws, _ = await self.connect()
        for recover in ({"offset": -1, "epoch": "x"}, {"offset": 1}, {"offset": "1", "epoch": "x"}, 5):
            with self.subTest(recover=recover):
                reply = await self.command(ws, {"action": "subscribe", "topic": "chat:a", "recover": recover})
                self.assertEqual((reply["type"], reply["code"]), ("error", "bad-request"), reply)

    async def test_recover_is_authorized_like_subscribe(self):
        ws, _ = await self.connect(user_id="1")
        reply = await self.command(ws, {"action": "subscribe", "topic": "user:2",
                                        "recover": {"offset": 0, "epoch": "x"}})
        self.assertEqual((reply["type"], reply["code"]), ("error", "forbidden"), reply)


class ConcurrentRecoverTest(HistoryTestCase):
    SERVER_ARGS = ["--history", "chat:**=100000", "--publish-patterns", "chat:**",
                   "--commands-per-second", "0", "--max-outbound-bytes", "16777216"]  # two loops (the harness default)

    async def test_recoveries_while_another_process_publishes_lose_and_repeat_nothing(self):
        publisher = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "history_publisher.py"), str(self.port),
             self.token(user_id="publisher"), "chat:busy"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(publisher.stderr.close)
        self.addCleanup(publisher.stdout.close)
        self.addCleanup(publisher.wait, 5)
        self.addCleanup(publisher.kill)
        line = await asyncio.wait_for(asyncio.to_thread(publisher.stdout.readline), DEFAULT_TIMEOUT)
        self.assertEqual(line.strip(), "started", publisher.stderr.read() if not line else line)
        seen = []  # every `n` the subscriber saw, in order
        last, epoch = 0, None
        recoveries = 0
        for cycle in range(40):
            ws, _ = await self.connect()
            recover = {"offset": last, "epoch": epoch} if epoch else None
            reply = await self.subscribe(ws, "chat:busy", recover)
            pending = []  # live messages that arrived before the history page
            if epoch:
                self.assertEqual(reply["recovered"], True, reply)
                recoveries += 1
            else:
                # Start from the stream's beginning: everything so far through the history action.
                await ws.send(json.dumps({"action": "history", "topic": "chat:busy", "since": 0, "limit": 1000}))
                while True:
                    page = await self.recv_json(ws)
                    if page["type"] == "history":
                        break
                    pending.append(page)
                self.assertEqual(page["messages"][0]["offset"], 1)
                upto = reply["offset"]
                for m in page["messages"]:
                    if m["offset"] <= upto:
                        seen.append((m["offset"], m["n"]))
                last = upto
                epoch = reply["epoch"]
            # Read a varying number of messages (replay and live), then drop the connection.
            for _ in range(5 + cycle * 7 % 40):
                m = pending.pop(0) if pending else await self.recv_json(ws)
                self.assertEqual(m["type"], "tick", m)
                self.assertEqual(m["offset"], last + 1, f"cycle {cycle}: expected {last + 1}, got {m['offset']}")
                last = m["offset"]
                seen.append((m["offset"], m["n"]))
            await ws.close()
        self.assertIsNone(publisher.poll(), publisher.stderr.read() if publisher.poll() is not None else "")
        self.assertEqual(recoveries, 39)
        # Each message exactly once and in order: offsets 1..last and the publisher's own
        # numbering agree (the publisher numbers from 1 in the order it published).
        self.assertEqual([o for o, _ in seen], list(range(1, last + 1)))
        self.assertEqual([n for _, n in seen], list(range(1, last + 1)))


class HistoryActionTest(HistoryTestCase):

    async def test_history_action_pages_through_kept_messages(self):
        await self.publish("chat:a", 5)
        ws, _ = await self.connect()
        page = await self.command(ws, {"action": "history", "topic": "chat:a", "since": 1, "limit": 2, "ref": 7})
        self.assertEqual(page["type"], "history")
        self.assertEqual((page["topic"], page["offset"], page["ref"]), ("chat:a", 5, 7))
        self.assertEqual([m["offset"] for m in page["messages"]], [2, 3])
        self.assertEqual([m["i"] for m in page["messages"]], [1, 2])
        self.assertTrue(all(m["topic"] == "chat:a" for m in page["messages"]))
        rest = await self.command(ws, {"action": "history", "topic": "chat:a", "since": 3})
        self.assertEqual([m["offset"] for m in rest["messages"]], [4, 5])
        self.assertEqual(rest["epoch"], page["epoch"])

    async def test_history_api_answers_the_same(self):
        await self.publish("chat:a", 4)
        ws, _ = await self.connect()
        page = await self.command(ws, {"action": "history", "topic": "chat:a", "since": 1, "limit": 2})
        data = await self.api_ok("GET", "/api/history?topic=chat:a&since=1&limit=2")
        page.pop("type")
        data.pop("type")
        self.assertEqual(data, page)

    async def test_history_api_needs_the_key_and_a_stream(self):
        status, _ = await self.api("GET", "/api/history?topic=chat:a", key=None)
        self.assertEqual(status, 401)
        status, data = await self.api("GET", "/api/history?topic=other")
        self.assertEqual(status, 404, data)
        for query in ("", "?topic=chat:a&since=-1", "?topic=chat:a&limit=0", "?topic=chat:a&limit=1001",
                      "?topic=chat:a&topic=chat:b"):
            with self.subTest(query=query):
                status, data = await self.api("GET", "/api/history" + query)
                self.assertEqual(status, 400, data)

    async def test_history_action_is_authorized_like_subscribe(self):
        ws, _ = await self.connect(user_id="1")
        reply = await self.command(ws, {"action": "history", "topic": "user:2"})
        self.assertEqual((reply["type"], reply["code"]), ("error", "forbidden"), reply)
        reply = await self.command(ws, {"action": "history", "topic": "other"})
        self.assertEqual((reply["type"], reply["code"]), ("error", "bad-request"), reply)
        reply = await self.command(ws, {"action": "history", "topic": "chat:a", "limit": 0})
        self.assertEqual((reply["type"], reply["code"]), ("error", "bad-request"), reply)


class LimitTest(HistoryTestCase):

    async def test_size_keeps_the_newest_messages(self):
        await self.publish("small:a", 10)
        data = await self.api_ok("GET", "/api/history?topic=small:a")
        self.assertEqual([m["offset"] for m in data["messages"]], [8, 9, 10])
        self.assertEqual(data["offset"], 10)

    async def test_ttl_expiry_drops_the_stream_and_changes_its_epoch(self):
        # brief:** keeps messages for 1 s. Waits below poll with a deadline; the test's outcome
        # does not depend on how long expiry took.
        ws, _ = await self.connect()
        epoch = (await self.subscribe(ws, "brief:a"))["epoch"]
        await self.publish("brief:a", 2)
        deadline = time.monotonic() + 10
        while True:
            data = await self.api_ok("GET", "/api/history?topic=brief:a")
            if not data["messages"]:
                break
            self.assertLess(time.monotonic(), deadline, "history did not expire")
            await asyncio.sleep(0.2)
        # The whole stream went with its last message: offsets start again under a new epoch.
        self.assertEqual(await self.publish("brief:a"), [1])
        ws2, _ = await self.connect()
        reply = await self.subscribe(ws2, "brief:a", {"offset": 2, "epoch": epoch})
        self.assertEqual(reply["recovered"], False)
        self.assertNotEqual(reply["epoch"], epoch)
        self.assertGreaterEqual(await self.metric("realtime_history_expirations_total"), 1)

    @server_args("--history-max-bytes", "65536")
    async def test_byte_cap_drops_the_least_recently_published_streams(self):
        ws, _ = await self.connect()
        epoch = (await self.subscribe(ws, "chat:first"))["epoch"]
        await self.publish("chat:first", 1)
        filler = "x" * 1000
        for t in range(100):  # ~100 KB into streams published after chat:first
            await self.publish(f"chat:t{t}", 1, filler=filler)
        self.assertLessEqual(await self.metric("realtime_history_bytes"), 65536)
        self.assertGreater(await self.metric("realtime_history_evictions_total"), 0)
        data = await self.api_ok("GET", "/api/history?topic=chat:first")
        self.assertEqual(data["messages"], [])
        ws2, _ = await self.connect()
        reply = await self.subscribe(ws2, "chat:first", {"offset": 1, "epoch": epoch})
        self.assertEqual(reply["recovered"], False)
        self.assertNotEqual(reply["epoch"], epoch)
        newest = await self.api_ok("GET", "/api/history?topic=chat:t99")
        self.assertEqual(len(newest["messages"]), 1)

    async def test_metrics_account_kept_messages(self):
        self.assertEqual(await self.metric("realtime_history_messages"), 0)
        await self.publish("chat:a", 4)
        await self.publish("small:a", 5)
        self.assertEqual(await self.metric("realtime_history_streams"), 2)
        self.assertEqual(await self.metric("realtime_history_messages"), 4 + 3)
        self.assertGreater(await self.metric("realtime_history_bytes"), 7 * 60)

    async def test_startup_line_names_the_rules_and_the_cap(self):
        self.assertIn("history=chat:**=100,small:**=3,brief:**=3/1 max-bytes=67108864 ", self.server.log())


class HistoryOptionTest(unittest.TestCase):
    """Bad specs and refused combinations end the server with status 2 and a clear message."""

    def run_server(self, *args, env=None):
        cmd = [SERVER, "--port", str(free_port()), "--jwt-secret", random_secret(), "--api-key", random_secret(),
               *args]
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=DEFAULT_TIMEOUT * 2, env=full_env)

    def test_bad_specs_exit_2(self):
        for spec, why in (("chat", "PATTERN=SIZE"), ("chat=0", "SIZE"), ("chat=x", "SIZE"),
                          ("chat=10/0", "TTL"), ("chat=10/x", "TTL"), ("**:a=10", "**"), ("=5", "empty")):
            with self.subTest(spec=spec):
                r = self.run_server("--history", spec)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("--history", r.stderr)
                self.assertIn(why, r.stderr)

    def test_bad_spec_from_the_environment_exits_2(self):
        r = self.run_server(env={"REALTIME_HISTORY": "chat=-1"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--history", r.stderr)

    def test_small_byte_cap_exits_2(self):
        r = self.run_server("--history", "chat=10", "--history-max-bytes", "100")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--history-max-bytes", r.stderr)


class HistoryConfigFileTest(HistoryTestCase):
    """TOML: a table of PATTERN = "SIZE[/TTL]" (or a number), or an array of specs."""
    SERVER_ARGS = []

    def setUp(self):
        self.server = None

    def start_with(self, toml_text):
        path = os.path.join(HERE, f".history-{os.getpid()}-{id(self)}.toml")
        with open(path, "w") as f:
            f.write(toml_text)
        self.addCleanup(os.remove, path)
        self.server = self.start_server(["--config", path])

    async def test_table(self):
        self.start_with('[history]\n"chat:**" = "2/60"\n"small:**" = 3\n')
        await self.publish("chat:a", 4)
        data = await self.api_ok("GET", "/api/history?topic=chat:a")
        self.assertEqual([m["offset"] for m in data["messages"]], [3, 4])

    async def test_array(self):
        self.start_with('history = ["chat:**=2"]\n')
        await self.publish("chat:a", 3)
        data = await self.api_ok("GET", "/api/history?topic=chat:a")
        self.assertEqual([m["offset"] for m in data["messages"]], [2, 3])


if __name__ == "__main__":
    unittest.main()
