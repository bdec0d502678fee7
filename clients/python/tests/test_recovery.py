"""History recovery (docs/history.md) in boundary_realtime.RealtimeClient, against the real
realtime-server started with --history, plus the position bookkeeping on its own.

Every wait has a deadline; no outcome depends on timing. Messages meant to be missed are
published while the client is held off the server: its get_token waits on a gate that the
test opens once they were published (the API answers `delivered: 0`, so none went live).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # clients/python: the package under test
sys.path.insert(0, HERE)

from boundary_realtime import StreamPosition  # noqa: E402
from boundary_realtime.streams import DELIVER, DUPLICATE, Stream, as_position  # noqa: E402
from test_client import DEADLINE, ClientTestCase, Recorder, within  # noqa: E402

FEED = "feed:*=1000/600"      # topics with history
QUIET = "quiet:*=10/1"        # history whose streams expire one second after their last message
ARGS = ("--publish-patterns", "chat:*", "--history", f"{FEED},{QUIET}")


class StreamTest(unittest.TestCase):
    """The bookkeeping alone: which messages are delivered, when the recovery is reported."""

    def test_a_plain_subscribe_adopts_the_stream_position(self):
        s = Stream(None, 0)
        self.assertIsNone(s.subscribed(None, {"epoch": "e1", "offset": 4}, report=False))
        self.assertEqual(s.position, StreamPosition("e1", 4))
        self.assertEqual(s.on_message(5), DELIVER)
        self.assertEqual(s.position, ("e1", 5))

    def test_recovered_replay_is_counted_and_reported_at_its_last_message(self):
        s = Stream("e1", 3)
        held = s.position
        self.assertIsNone(s.subscribed(held, {"epoch": "e1", "offset": 6, "recovered": True},
                                       report=True))
        for offset in (4, 5):
            self.assertEqual(s.on_message(offset), DELIVER)
            self.assertIsNone(s.replay_done(offset))
        self.assertEqual(s.on_message(6), DELIVER)
        self.assertEqual(s.replay_done(6), {"recovered": True, "replayed": 3})
        self.assertEqual(s.on_message(7), DELIVER)
        self.assertIsNone(s.replay_done(7), "reported once")

    def test_nothing_to_replay_is_reported_at_the_reply(self):
        s = Stream("e1", 6)
        event = s.subscribed(s.position, {"epoch": "e1", "offset": 6, "recovered": True}, True)
        self.assertEqual(event, {"recovered": True, "replayed": 0})

    def test_replayed_offsets_already_held_are_duplicates(self):
        s = Stream("e1", 3)
        sent = s.position
        self.assertEqual(s.on_message(4), DELIVER)  # arrived between the send and the reply
        self.assertEqual(s.on_message(5), DELIVER)
        s.subscribed(sent, {"epoch": "e1", "offset": 5, "recovered": True}, report=False)
        self.assertEqual(s.on_message(4), DUPLICATE)
        self.assertEqual(s.on_message(5), DUPLICATE)
        self.assertEqual(s.on_message(6), DELIVER)
        self.assertEqual(s.position, ("e1", 6))

    def test_not_recovered_adopts_the_new_epoch_and_offset(self):
        s = Stream("e1", 9)
        event = s.subscribed(s.position, {"epoch": "e2", "offset": 2, "recovered": False}, True)
        self.assertEqual(event, {"recovered": False, "replayed": 0})
        self.assertEqual(s.position, ("e2", 2))
        self.assertEqual(s.on_message(3), DELIVER)

    def test_offsets_starting_again_while_subscribed_mean_an_unknown_epoch(self):
        s = Stream("e1", 9)
        self.assertEqual(s.on_message(1), DELIVER, "a restarted stream's messages are new")
        self.assertIsNone(s.position, "the new epoch is unknown: nothing to recover with")
        self.assertEqual(s.on_message(2), DELIVER)

    def test_a_lost_connection_ends_the_replay_without_a_report(self):
        s = Stream("e1", 3)
        s.subscribed(s.position, {"epoch": "e1", "offset": 6, "recovered": True}, True)
        s.on_message(4)
        s.connection_lost()
        self.assertIsNone(s.replay_done(6))
        self.assertEqual(s.position, ("e1", 4))

    def test_positions_are_accepted_in_three_shapes(self):
        self.assertEqual(as_position(StreamPosition("e", 2)), ("e", 2))
        self.assertEqual(as_position(("e", 2)), ("e", 2))
        self.assertEqual(as_position({"epoch": "e", "offset": 2}), ("e", 2))
        for bad in (("e", -1), (3, 2), ("e", True), ("e", "2")):
            with self.assertRaises(ValueError, msg=repr(bad)):
                as_position(bad)
        with self.assertRaises(TypeError):
            as_position("e")


class Gate:
    """A get_token that holds every connect after the first until `open()`."""

    def __init__(self, token: str):
        self.token = token
        self.calls = 0
        self._event = asyncio.Event()
        self._event.set()

    async def __call__(self) -> str:
        self.calls += 1
        await self._event.wait()
        return self.token

    def close(self) -> None:
        self._event.clear()

    def open(self) -> None:
        self._event.set()


class RecoveryTestCase(ClientTestCase):

    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = 2.0
        self.servers = []
        self.server = await self.start_server(extra_args=ARGS)

    async def publish(self, topic, n, server=None):
        return await self.api("/api/publish", {"topic": topic, "message": {"type": "tick", "n": n}},
                              server=server)

    async def gated_client(self):
        gate = Gate(self.server.token("42"))
        c = await self.connected_client(get_token=gate, initial_delay=0.05, max_delay=0.2,
                                        shutdown_reconnect_delay=0.0)
        return c, gate

    async def drop_and_hold(self, c, gate):
        """Close the client's connection from the server; returns once the client is waiting at
        the gate for its next connection."""
        calls = gate.calls
        gate.close()
        await self.api("/api/disconnect", {"connection-id": c.connection_id})
        deadline = time.monotonic() + DEADLINE
        while gate.calls == calls:
            self.assertLess(time.monotonic(), deadline, "the client did not try to reconnect")
            await asyncio.sleep(0.02)
        self.assertEqual(c.state, "reconnecting")

    async def history(self, topic):
        return await self.api(f"/api/history?topic={topic}&limit=1000", method="GET")


class RecoverTest(RecoveryTestCase):

    async def test_missed_messages_are_replayed_once_in_order_after_a_reconnect(self):
        c, gate = await self.gated_client()
        got, recoveries = Recorder(), Recorder()
        c.on("recovery", recoveries)
        await within(c.subscribe("feed:a", got))
        epoch = c.position("feed:a").epoch
        self.assertEqual(c.position("feed:a"), StreamPosition(epoch, 0))
        for n in range(1, 4):
            self.assertEqual(await self.publish("feed:a", n), {"delivered": 1, "offset": n})
        await got.wait_count(3)
        self.assertEqual(c.position("feed:a"), (epoch, 3))

        await self.drop_and_hold(c, gate)
        for n in range(4, 9):
            self.assertEqual(await self.publish("feed:a", n), {"delivered": 0, "offset": n},
                             "published while the client is away")
        gate.open()
        await recoveries.wait(what="recovery event")
        self.assertEqual(recoveries.items, [{"topic": "feed:a", "recovered": True, "replayed": 5}])
        await got.wait_count(8)
        self.assertEqual(await self.publish("feed:a", 9), {"delivered": 1, "offset": 9})
        await got.wait_count(9)
        self.assertEqual([m["n"] for m in got.items], list(range(1, 10)))
        self.assertEqual([m["offset"] for m in got.items], list(range(1, 10)))
        self.assertEqual(c.position("feed:a"), (epoch, 9))
        self.assertEqual(c.positions, {"feed:a": (epoch, 9)})
        self.assertEqual(len(recoveries.items), 1, "one recovery per reconnect")

    async def test_nothing_missed_recovers_with_nothing_replayed(self):
        c, gate = await self.gated_client()
        got, recoveries = Recorder(), Recorder()
        c.on("recovery", recoveries)
        await within(c.subscribe("feed:b", got))
        await self.publish("feed:b", 1)
        await got.wait_count(1)
        await self.drop_and_hold(c, gate)
        gate.open()
        await recoveries.wait(what="recovery event")
        self.assertEqual(recoveries.items, [{"topic": "feed:b", "recovered": True, "replayed": 0}])
        await self.publish("feed:b", 2)
        await got.wait_count(2)
        self.assertEqual([m["offset"] for m in got.items], [1, 2])

    async def test_an_explicit_connect_after_disconnect_recovers_too(self):
        c = await self.connected_client()
        got, recoveries = Recorder(), Recorder()
        c.on("recovery", recoveries)
        await within(c.subscribe("feed:e", got))
        await self.publish("feed:e", 1)
        await got.wait_count(1)
        await within(c.disconnect())
        for n in (2, 3):
            self.assertEqual(await self.publish("feed:e", n), {"delivered": 0, "offset": n})
        await within(c.connect())
        await recoveries.wait(what="recovery event")
        self.assertEqual(recoveries.items, [{"topic": "feed:e", "recovered": True, "replayed": 2}])
        await got.wait_count(3)
        self.assertEqual([m["n"] for m in got.items], [1, 2, 3])

    async def test_every_message_exactly_once_while_publishing_through_reconnects(self):
        total, drop_at = 300, (50, 150, 250)
        c = await self.connected_client(initial_delay=0.0, max_delay=0.05)
        got, recoveries, connects = Recorder(), Recorder(), Recorder()
        c.on("recovery", recoveries)
        c.on("connected", connects)
        await within(c.subscribe("feed:busy", got))
        reached = [threading.Event() for _ in drop_at]
        dropped = [threading.Event() for _ in drop_at]

        def publish_all():  # from a thread, as fast as the API answers
            for n in range(1, total + 1):
                self.server.api("POST", "/api/publish",
                                {"topic": "feed:busy", "message": {"type": "tick", "n": n}})
                if n in drop_at:  # wait until the test closed the connection, then go on
                    i = drop_at.index(n)
                    reached[i].set()
                    if not dropped[i].wait(DEADLINE):
                        raise AssertionError(f"no drop after message {n}")

        publisher = asyncio.ensure_future(asyncio.to_thread(publish_all))
        for i in range(len(drop_at)):
            self.assertTrue(await asyncio.to_thread(reached[i].wait, DEADLINE))
            connects.items.clear()
            await self.api("/api/disconnect", {"connection-id": c.connection_id})
            dropped[i].set()  # the publisher goes on while the client reconnects
            await connects.wait(what="reconnected")
        await within(publisher, 4 * DEADLINE)
        await got.wait_count(total, timeout=2 * DEADLINE)
        await recoveries.wait_count(len(drop_at), what="recoveries")
        self.assertEqual([m["n"] for m in got.items], list(range(1, total + 1)))
        self.assertEqual([m["offset"] for m in got.items], list(range(1, total + 1)))
        self.assertEqual(len(recoveries.items), len(drop_at))
        self.assertTrue(all(r["recovered"] for r in recoveries.items), recoveries.items)

    async def test_a_server_restart_is_not_recovered_and_the_new_epoch_is_adopted(self):
        port, secret, key = self.server.port, self.server.jwt_secret, self.server.api_key
        c, gate = await self.gated_client()
        got, recoveries = Recorder(), Recorder()
        c.on("recovery", recoveries)
        await within(c.subscribe("feed:r", got))
        old_epoch = c.position("feed:r").epoch
        for n in range(1, 4):
            await self.publish("feed:r", n)
        await got.wait_count(3)

        gate.close()
        old = self.server
        await asyncio.to_thread(old.stop)
        self.server = await self.start_server(port=port, jwt_secret=secret, api_key=key,
                                              extra_args=ARGS)
        self.assertEqual(await self.publish("feed:r", 4), {"delivered": 0, "offset": 1})
        new_epoch = (await self.history("feed:r"))["epoch"]
        self.assertNotEqual(new_epoch, old_epoch)
        gate.open()
        await recoveries.wait(what="recovery event")
        self.assertEqual(recoveries.items, [{"topic": "feed:r", "recovered": False, "replayed": 0}])
        self.assertEqual(c.position("feed:r"), (new_epoch, 1), "the new epoch and its last offset")
        self.assertEqual(len(got.items), 3, "nothing is replayed when recovery fails")

        # Offset 2 of the new epoch is below the old epoch's 3: it is new, not a duplicate.
        self.assertEqual(await self.publish("feed:r", 5), {"delivered": 1, "offset": 2})
        await got.wait_count(4)
        self.assertEqual([(m["n"], m["offset"]) for m in got.items], [(1, 1), (2, 2), (3, 3), (5, 2)])

        # And the next reconnect recovers in the new epoch.
        await self.drop_and_hold(c, gate)
        await self.publish("feed:r", 6)
        gate.open()
        await recoveries.wait_count(2, what="second recovery")
        self.assertEqual(recoveries.items[1], {"topic": "feed:r", "recovered": True, "replayed": 1})
        await got.wait_count(5)
        self.assertEqual(got.items[-1]["n"], 6)
        self.assertEqual(c.position("feed:r"), (new_epoch, 3))

    async def test_a_topic_without_history_keeps_its_behaviour(self):
        c, gate = await self.gated_client()
        plain, feed, recoveries, subscribed = Recorder(), Recorder(), Recorder(), Recorder()
        c.on("recovery", recoveries)
        c.on("subscribed", subscribed)
        await within(c.subscribe("order:1", plain))
        await within(c.subscribe("feed:c", feed))
        self.assertIsNone(c.position("order:1"))
        self.assertNotIn("order:1", c.positions)
        self.assertEqual(await self.publish("order:1", 1), {"delivered": 1})
        await plain.wait_count(1)
        self.assertNotIn("offset", plain.items[0])

        await self.drop_and_hold(c, gate)
        subscribed.items.clear()
        self.assertEqual(await self.publish("order:1", 2), {"delivered": 0})
        await self.publish("feed:c", 1)
        gate.open()
        await recoveries.wait(what="recovery event")
        await subscribed.wait_count(2, what="both resubscribed")
        by_topic = {m["topic"]: m for m in subscribed.items}
        self.assertNotIn("recovered", by_topic["order:1"], "no recover asked for order:1")
        self.assertEqual(by_topic["feed:c"]["recovered"], True)
        self.assertEqual(recoveries.items, [{"topic": "feed:c", "recovered": True, "replayed": 1}])
        self.assertEqual(await self.publish("order:1", 3), {"delivered": 1})
        await plain.wait_count(2)
        self.assertEqual([m["n"] for m in plain.items], [1, 3], "missed, as before: no history")
        await feed.wait_count(1)
        self.assertEqual(feed.items[0]["n"], 1)


class PositionTest(RecoveryTestCase):

    async def test_a_saved_position_recovers_in_a_new_client(self):
        first = await self.connected_client()
        got = Recorder()
        await within(first.subscribe("feed:p", got))
        for n in range(1, 4):
            await self.publish("feed:p", n)
        await got.wait_count(3)
        saved = first.position("feed:p")
        await within(first.disconnect())
        self.assertEqual(first.position("feed:p"), saved, "kept after disconnect(), to persist")
        for n in range(4, 7):
            self.assertEqual((await self.publish("feed:p", n))["delivered"], 0)

        stored = json.loads(json.dumps(saved))  # persisted as [epoch, offset]
        second = await self.connected_client()
        later, recoveries = Recorder(), Recorder()
        second.on("recovery", recoveries)
        await within(second.subscribe("feed:p", later, position=stored))
        await recoveries.wait(what="recovery event")
        self.assertEqual(recoveries.items, [{"topic": "feed:p", "recovered": True, "replayed": 3}])
        await later.wait_count(3)
        self.assertEqual([m["n"] for m in later.items], [4, 5, 6])
        self.assertEqual(second.position("feed:p"), (saved.epoch, 6))

    async def test_a_position_from_another_epoch_is_not_recovered(self):
        c = await self.connected_client()
        await self.publish("feed:q", 1)
        got, recoveries = Recorder(), Recorder()
        c.on("recovery", recoveries)
        await within(c.subscribe("feed:q", got, position=StreamPosition("not-the-epoch", 0)))
        await recoveries.wait(what="recovery event")
        self.assertEqual(recoveries.items, [{"topic": "feed:q", "recovered": False, "replayed": 0}])
        epoch = (await self.history("feed:q"))["epoch"]
        self.assertEqual(c.position("feed:q"), (epoch, 1))
        self.assertEqual(got.items, [])
        with self.assertRaises(ValueError):
            await c.subscribe("feed:q", got, position=("e", -1))

    async def test_unsubscribing_the_last_handler_forgets_the_position(self):
        c = await self.connected_client()
        sub = await within(c.subscribe("feed:u", Recorder()))
        self.assertIsNotNone(c.position("feed:u"))
        await within(sub.unsubscribe())
        self.assertIsNone(c.position("feed:u"))
        self.assertEqual(c.positions, {})


class DuplicateTest(RecoveryTestCase):

    async def test_messages_replayed_again_are_dropped(self):
        # A second handler's subscribe carries the offset the client holds when it is sent. The
        # messages 4 and 5 are already on their way (the API answered delivered: 1) but not yet
        # read when it is sent, so the server replays them after its reply: each arrives twice
        # and reaches the handlers once.
        c = await self.connected_client()
        first, second = Recorder(), Recorder()
        await within(c.subscribe("feed:d", first))
        for n in range(1, 4):
            await self.publish("feed:d", n)
        await first.wait_count(3)
        raw_offsets, sent = [], []
        on_message = c._on_message

        def record_in(raw):
            msg = json.loads(raw)
            if msg.get("topic") == "feed:d" and msg.get("type") == "tick":
                raw_offsets.append(msg["offset"])
            on_message(raw)
        c._on_message = record_in
        ws_send = c._conn.ws.send

        async def record_out(text):
            sent.append(json.loads(text))
            return await ws_send(text)
        c._conn.ws.send = record_out

        # Blocking calls on purpose: the client cannot read 4 and 5 before the subscribe is sent.
        for n in (4, 5):
            self.assertEqual(self.server.api("POST", "/api/publish",
                                             {"topic": "feed:d", "message": {"type": "tick", "n": n}}),
                             {"delivered": 1, "offset": n})
        await within(c.subscribe("feed:d", second))
        await first.wait_count(5)
        await self.publish("feed:d", 6)
        await first.wait_count(6)
        subscribes = [f for f in sent if f.get("action") == "subscribe"]
        self.assertEqual(len(subscribes), 1)
        self.assertEqual(subscribes[0]["recover"]["offset"], 3, "the held offset when sent")
        self.assertEqual(raw_offsets, [4, 5, 4, 5, 6], "the server sent 4 and 5 twice")
        self.assertEqual([m["n"] for m in first.items], [1, 2, 3, 4, 5, 6])
        self.assertEqual([m["n"] for m in second.items], [4, 5, 6])
        self.assertEqual(c.position("feed:d")[1], 6)


class RestartWhileSubscribedTest(RecoveryTestCase):

    async def metric(self, name):
        status, text = await asyncio.to_thread(self.server.http, "GET", "/metrics")
        self.assertEqual(status, 200)
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    async def test_a_stream_that_expired_while_subscribed_is_delivered_not_dropped(self):
        c, gate = await self.gated_client()
        got, recoveries = Recorder(), Recorder()
        c.on("recovery", recoveries)
        await within(c.subscribe("quiet:x", got))
        for n in range(1, 4):
            await self.publish("quiet:x", n)
        await got.wait_count(3)
        # TTL 1 s: the stream is dropped whole although the client is still subscribed.
        deadline = time.monotonic() + DEADLINE
        while await self.metric("realtime_history_expirations_total") < 1 or \
                await self.metric("realtime_history_streams") > 0:
            self.assertLess(time.monotonic(), deadline, "the quiet stream did not expire")
            await asyncio.sleep(0.1)
        self.assertEqual(await self.publish("quiet:x", 4), {"delivered": 1, "offset": 1})
        await got.wait_count(4)
        self.assertEqual([(m["n"], m["offset"]) for m in got.items], [(1, 1), (2, 2), (3, 3), (4, 1)])
        self.assertIsNone(c.position("quiet:x"), "the new epoch is unknown to the client")

        await self.drop_and_hold(c, gate)
        gate.open()
        await recoveries.wait(what="recovery event")
        self.assertEqual(recoveries.items, [{"topic": "quiet:x", "recovered": False, "replayed": 0}])
        self.assertEqual(c.position("quiet:x").offset, 1)
        await self.publish("quiet:x", 5)
        await got.wait_count(5)
        self.assertEqual(got.items[-1]["offset"], 2)


if __name__ == "__main__":
    unittest.main()
