"""Presence (docs/presence.md) in boundary_realtime.RealtimeClient, against the real
realtime-server started with --presence, plus the member-list bookkeeping on its own.

Every wait has a deadline. A server that sends nothing (a second connection of a present user,
the leaving of any but the last) is checked with a later event as a barrier: the server sends a
topic's events in the order of its changes, so once the barrier's event arrived, an event sent
before it would have arrived too.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # clients/python: the package under test
sys.path.insert(0, HERE)

from boundary_realtime import (PresenceListing, PresenceMembers, PresenceUser,  # noqa: E402
                               RealtimeError)
from boundary_realtime.presence import Roster, parse_listing  # noqa: E402
from test_client import DEADLINE, ClientTestCase, Recorder, within  # noqa: E402
from test_recovery import Gate  # noqa: E402

ARGS = ("--publish-patterns", "chat:*", "--presence", "room:*,user:*")
ADA = {"name": "Ada", "avatar": "/a/1.png"}
BOB = {"name": "Bob"}


class RosterTest(unittest.TestCase):
    """The bookkeeping alone: a listing, then the events that follow it."""

    def listing(self, users, truncated=False):
        return parse_listing("room:x", {"type": "presence", "topic": "room:x", "users": users,
                                        "truncated": truncated})

    def test_parse_listing(self):
        got = self.listing([{"user-id": "1", "connections": 2, "info": ADA},
                            {"user-id": "2", "connections": 1},
                            {"connections": 1}, "junk"], truncated=True)
        self.assertEqual(got, PresenceListing("room:x", [PresenceUser("1", 2, ADA),
                                                         PresenceUser("2", 1, {})], True))

    def test_events_before_the_listing_are_left_out_and_after_it_applied(self):
        r = Roster()
        self.assertIsNone(r.snapshot("room:x"))
        self.assertFalse(r.joined("1", ADA), "before the listing: it reflects this join")
        r.listed(self.listing([{"user-id": "1", "connections": 1, "info": ADA}]))
        self.assertEqual(r.snapshot("room:x"), PresenceMembers("room:x", {"1": ADA}, False, True))
        self.assertTrue(r.joined("2", BOB))
        self.assertFalse(r.joined("2", BOB), "same user, same info: no change")
        self.assertTrue(r.left("1"))
        self.assertFalse(r.left("1"), "not there")
        self.assertEqual(r.snapshot("room:x").users, {"2": BOB})

    def test_a_lost_connection_stops_applying_until_the_next_listing(self):
        r = Roster()
        r.listed(self.listing([{"user-id": "1", "connections": 1, "info": {}}], truncated=True))
        r.connection_lost()
        self.assertFalse(r.joined("2", {}))
        self.assertEqual(r.snapshot("room:x"), PresenceMembers("room:x", {"1": {}}, True, False))
        r.listed(self.listing([{"user-id": "3", "connections": 1, "info": {}}]))
        self.assertEqual(r.snapshot("room:x"), PresenceMembers("room:x", {"3": {}}, False, True))

    def test_a_snapshot_is_a_copy(self):
        r = Roster()
        r.listed(self.listing([{"user-id": "1", "connections": 1, "info": {"name": "A"}}]))
        r.snapshot("room:x").users["1"]["name"] = "changed"
        self.assertEqual(r.snapshot("room:x").users, {"1": {"name": "A"}})


class PresenceTestCase(ClientTestCase):

    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = 2.0
        self.servers = []
        self.server = await self.start_server(extra_args=ARGS)

    async def user(self, user_id, info=None, **kw):
        return await self.connected_client(token=self.server.token(user_id, info=info), **kw)

    @staticmethod
    def track(client):
        """Records the presence events and the `members` changes a client reports."""
        events, changes = Recorder(), Recorder()
        client.on("presence-join", events)
        client.on("presence-leave", events)
        client.on("members", changes)
        return events, changes

    @staticmethod
    async def wait_members(client, topic, users, timeout=DEADLINE):
        """Until the client's member list of `topic` has exactly these user ids, synced."""
        deadline = time.monotonic() + timeout
        while True:
            m = client.members(topic)
            if m is not None and m.synced and set(m.users) == set(users):
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"members of {topic}: {m!r}, expected {sorted(users)}")
            await asyncio.sleep(0.02)

    async def api_presence(self, topic):
        return await self.api(f"/api/presence?topic={topic}", method="GET")


def moves(events):
    return [(e["type"], e["user-id"]) for e in events.items]


class MemberListTest(PresenceTestCase):

    async def test_two_users_and_a_second_connection_of_one_give_an_exact_list(self):
        ada = await self.user("1", ADA)
        ada_events, ada_changes = self.track(ada)
        messages = Recorder()
        await within(ada.subscribe("room:1", messages, presence=True))
        m = await self.wait_members(ada, "room:1", {"1"})
        self.assertEqual(m, PresenceMembers("room:1", {"1": ADA}, False, True))

        bob = await self.user("2", BOB)
        bob_events, _ = self.track(bob)
        await within(bob.subscribe("room:1", Recorder(), presence=True))
        m = await self.wait_members(bob, "room:1", {"1", "2"})
        self.assertEqual(m.users, {"1": ADA, "2": BOB}, "the listing carries each user's info")
        m = await self.wait_members(ada, "room:1", {"1", "2"})
        self.assertEqual(m.users, {"1": ADA, "2": BOB}, "the join carries the info")

        # Ada's second tab: no join anywhere. Carol joining afterwards is the barrier.
        ada_tab = await self.user("1", ADA)
        await within(ada_tab.subscribe("room:1", Recorder(), presence=True))
        await self.wait_members(ada_tab, "room:1", {"1", "2"})
        carol = await self.user("3")
        await within(carol.subscribe("room:1", Recorder()))
        await self.wait_members(ada, "room:1", {"1", "2", "3"})
        await self.wait_members(bob, "room:1", {"1", "2", "3"})
        await bob_events.wait(lambda items: ("presence-join", "3") in moves(bob_events))
        self.assertEqual(moves(ada_events), [("presence-join", "1"), ("presence-join", "2"),
                                             ("presence-join", "3")])
        self.assertEqual(moves(bob_events), [("presence-join", "2"), ("presence-join", "3")])
        self.assertEqual(ada.members("room:1").users, {"1": ADA, "2": BOB, "3": {}})
        self.assertEqual([(c["change"], c["user-id"]) for c in ada_changes.items],
                         [("list", None), ("join", "2"), ("join", "3")])
        self.assertEqual(ada_changes.items[-1]["members"], ada.members("room:1"))
        self.assertEqual(messages.items, [], "presence events are not topic messages")

        listing = await within(ada.presence("room:1"))
        self.assertIsInstance(listing, PresenceListing)
        self.assertFalse(listing.truncated)
        self.assertEqual(sorted(listing.users), [PresenceUser("1", 2, ADA), PresenceUser("2", 1, BOB),
                                                 PresenceUser("3", 1, {})])
        # The same as the server's own answer.
        api = await self.api_presence("room:1")
        self.assertEqual(sorted((u["user-id"], u["connections"]) for u in api["users"]),
                         [("1", 2), ("2", 1), ("3", 1)])

    async def test_a_user_leaves_with_their_last_connection(self):
        ada = await self.user("1", ADA)
        events, changes = self.track(ada)
        await within(ada.subscribe("room:2", Recorder(), presence=True))
        bob = await self.user("2", BOB)
        await within(bob.subscribe("room:2", Recorder()))
        bob_tab = await self.user("2", BOB)
        await within(bob_tab.subscribe("room:2", Recorder()))
        await self.wait_members(ada, "room:2", {"1", "2"})

        await within(bob_tab.disconnect())  # Bob is still there: no leave
        carol = await self.user("3")
        await within(carol.subscribe("room:2", Recorder()))
        await self.wait_members(ada, "room:2", {"1", "2", "3"})
        self.assertNotIn(("presence-leave", "2"), moves(events))

        await within(bob.disconnect())      # his last connection
        m = await self.wait_members(ada, "room:2", {"1", "3"})
        self.assertEqual(m.users, {"1": ADA, "3": {}})
        self.assertEqual(moves(events)[-1], ("presence-leave", "2"))
        self.assertEqual(changes.items[-1]["change"], "leave")
        self.assertEqual(changes.items[-1]["user-id"], "2")

        # Carol unsubscribes: a leave too.
        sub = carol.subscriptions[0]
        await within(sub.unsubscribe())
        await self.wait_members(ada, "room:2", {"1"})

    async def test_unsubscribing_drops_the_list(self):
        ada = await self.user("1")
        _, changes = self.track(ada)
        first = await within(ada.subscribe("room:3", Recorder(), presence=True))
        second = await within(ada.subscribe("room:3", Recorder()))
        await self.wait_members(ada, "room:3", {"1"})
        await within(second.unsubscribe())
        self.assertIsNotNone(ada.members("room:3"), "the handler that asked for it remains")
        await within(first.unsubscribe())
        self.assertIsNone(ada.members("room:3"))
        self.assertEqual(changes.items[-1], {"topic": "room:3", "change": "drop",
                                             "user-id": None, "members": None})

    async def test_the_list_stays_exact_while_connections_come_and_go(self):
        watcher = await self.user("0")
        await within(watcher.subscribe("room:busy", Recorder(), presence=True))
        await self.wait_members(watcher, "room:busy", {"0"})
        rng = random.Random(11)
        clients = [await self.user(str(1 + i % 4), {"n": i}) for i in range(8)]
        subs = [None] * len(clients)
        for _ in range(60):
            i = rng.randrange(len(clients))
            if subs[i] is None:
                subs[i] = await within(clients[i].subscribe("room:busy", Recorder()))
            else:
                await within(subs[i].unsubscribe())
                subs[i] = None
            if rng.random() < 0.3:
                await asyncio.sleep(0.06)  # past the server's 50 ms coalescing interval
        expected = {"0"} | {str(1 + i % 4) for i, s in enumerate(subs) if s is not None}
        await self.wait_members(watcher, "room:busy", expected)
        api = await self.api_presence("room:busy")
        self.assertEqual({u["user-id"] for u in api["users"]}, expected)
        # And nothing more arrives that would change it.
        await asyncio.sleep(0.2)
        self.assertEqual(set(watcher.members("room:busy").users), expected)


class ReconnectTest(PresenceTestCase):

    async def test_the_list_is_rebuilt_after_the_server_drops_the_connection(self):
        gate = Gate(self.server.token("1", info=ADA))
        ada = await self.connected_client(get_token=gate, initial_delay=0.05, max_delay=0.2)
        _, changes = self.track(ada)
        await within(ada.subscribe("room:r", Recorder(), presence=True))
        bob = await self.user("2", BOB)
        await within(bob.subscribe("room:r", Recorder()))
        await self.wait_members(ada, "room:r", {"1", "2"})

        calls = gate.calls
        gate.close()
        await self.api("/api/disconnect", {"connection-id": ada.connection_id})
        deadline = time.monotonic() + DEADLINE
        while gate.calls == calls:
            self.assertLess(time.monotonic(), deadline, "the client did not try to reconnect")
            await asyncio.sleep(0.02)
        m = ada.members("room:r")
        self.assertEqual((set(m.users), m.synced), ({"1", "2"}, False), "kept, marked stale")

        # While Ada is away, Bob leaves and Carol arrives: no event can tell her.
        await within(bob.disconnect())
        carol = await self.user("3")
        await within(carol.subscribe("room:r", Recorder()))
        self.assertEqual({u["user-id"] for u in (await self.api_presence("room:r"))["users"]},
                         {"3"})
        changes.items.clear()
        gate.open()
        m = await self.wait_members(ada, "room:r", {"1", "3"})
        self.assertEqual(m.users, {"1": ADA, "3": {}})
        self.assertEqual(changes.items[0]["change"], "list")

        # Events apply again on the new connection.
        dave = await self.user("4")
        await within(dave.subscribe("room:r", Recorder()))
        await self.wait_members(ada, "room:r", {"1", "3", "4"})
        await within(carol.disconnect())
        await self.wait_members(ada, "room:r", {"1", "4"})


class ErrorTest(PresenceTestCase):

    async def test_presence_on_a_topic_without_presence_raises(self):
        c = await self.user("1")
        with self.assertRaises(RealtimeError) as caught:
            await within(c.presence("chat:general"))
        self.assertEqual(caught.exception.code, "bad-request")
        self.assertEqual(caught.exception.topic, "chat:general")
        self.assertIn("presence", caught.exception.message)
        self.assertEqual(c.state, "connected")
        self.assertEqual((await within(c.presence("room:empty"))),
                         PresenceListing("room:empty", [], False))

    async def test_presence_on_a_forbidden_topic_raises_forbidden(self):
        c = await self.user("1")
        with self.assertRaises(RealtimeError) as caught:
            await within(c.presence("user:2"))
        self.assertEqual(caught.exception.code, "forbidden")
        listing = await within(c.presence("user:1"))
        self.assertEqual(listing.users, [])

    async def test_subscribing_with_presence_to_a_topic_without_it_keeps_the_subscription(self):
        c = await self.user("1")
        errors, changes = Recorder(), Recorder()
        c.on("error", errors)
        c.on("members", changes)
        got = Recorder()
        sub = await within(c.subscribe("chat:plain", got, presence=True))
        await errors.wait(what="error event")
        self.assertEqual(errors.items[0].code, "bad-request")
        self.assertEqual(errors.items[0].topic, "chat:plain")
        self.assertIsNone(c.members("chat:plain"))
        self.assertTrue(sub.active)
        self.assertEqual(await within(c.publish("chat:plain", {"type": "chat", "text": "hi"})), 1)
        await got.wait_count(1)
        # Another handler on it: the topic is not listed again (it would fail again).
        await within(c.subscribe("chat:plain", Recorder(), presence=True))
        await within(c.ping())
        await asyncio.sleep(0.1)
        self.assertEqual(changes.items, [])
        self.assertEqual(len(errors.items), 1, "asked once")


class TruncatedTest(PresenceTestCase):

    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = 2.0
        self.servers = []
        self.server = await self.start_server(extra_args=ARGS + ("--presence-max-users", "1"))

    async def test_a_capped_listing_is_marked_truncated(self):
        bob = await self.user("2", BOB)
        await within(bob.subscribe("room:t", Recorder()))
        ada = await self.user("1", ADA)
        await within(ada.subscribe("room:t", Recorder(), presence=True))
        listing = await within(ada.presence("room:t"))
        self.assertTrue(listing.truncated)
        self.assertEqual(len(listing.users), 1)
        deadline = time.monotonic() + DEADLINE
        while ada.members("room:t") is None:
            self.assertLess(time.monotonic(), deadline, "no member list")
            await asyncio.sleep(0.02)
        m = ada.members("room:t")
        self.assertTrue(m.truncated)
        self.assertEqual(len(m.users), 1)
        carol = await self.user("3")
        await within(carol.subscribe("room:t", Recorder()))
        m = await self.wait_members(ada, "room:t", set(m.users) | {"3"})
        self.assertTrue(m.truncated, "still incomplete")


if __name__ == "__main__":
    unittest.main()
