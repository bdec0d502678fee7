"""Presence on one node (docs/presence.md, docs/protocol.md "Presence"): user-level
presence-join / presence-leave events to a topic's subscribers, the presence action with
subscribe's authorization, GET /api/presence and /api/presence-stats, the `info` claim, the
user limit of a listing, and the options' errors. Real server, Python `websockets` clients."""

import asyncio
import json
import os
import subprocess
import time
import unittest
import urllib.parse

from rt_harness import (DEFAULT_TIMEOUT, SERVER, RealtimeTestCase, free_port, http_request, make_jwt,
                        random_secret, server_args)

PRESENCE = ["--presence", "room:*,doc:**", "--commands-per-second", "0"]  # the harness runs --threads 2


async def follow_listing(test, ws, quiet: float, within: float) -> set:
    """The copy a client keeps: the answer to the `presence` it sent, then the joins and leaves
    after it (events before the answer are ignored). Fails on an event that contradicts the
    copy; ends after `quiet` seconds without a message (or `within` in all)."""
    present = None
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            m = json.loads(await asyncio.wait_for(ws.recv(), quiet))
        except asyncio.TimeoutError:
            break
        if m["type"] == "presence":
            present = {u["user-id"] for u in m["users"]}
        elif present is not None and m["type"] == "presence-join":
            test.assertNotIn(m["user-id"], present, "join of a user already listed")
            present.add(m["user-id"])
        elif present is not None and m["type"] == "presence-leave":
            test.assertIn(m["user-id"], present, "leave of a user not listed")
            present.discard(m["user-id"])
    test.assertIsNotNone(present, "no answer to presence")
    return present


class PresenceTestCase(RealtimeTestCase):
    SERVER_ARGS = PRESENCE

    async def join(self, user_id, topic="room:1", info=None, **claims):
        """A connection of `user_id` subscribed to `topic`; returns it once subscribed."""
        if info is not None:
            claims["info"] = info
        ws, _ = await self.connect(token=self.token(user_id, **claims))
        await self.subscribe(ws, topic)
        return ws

    async def subscribe(self, ws, topic):
        reply = await self.command(ws, {"action": "subscribe", "topic": topic})
        self.assertEqual(reply["type"], "subscribed", reply)

    async def next_of(self, ws, kind, timeout=DEFAULT_TIMEOUT):
        """The next message of type `kind`, skipping none: any other message fails."""
        m = await self.recv_json(ws, timeout)
        self.assertEqual(m["type"], kind, m)
        return m

    async def presence(self, ws, topic="room:1", **extra):
        reply = await self.command(ws, {"action": "presence", "topic": topic, **extra})
        return reply

    @staticmethod
    def by_user(listing):
        return {u["user-id"]: u for u in listing["users"]}


class JoinLeaveTest(PresenceTestCase):

    async def test_first_connection_of_a_user_is_announced_to_every_subscriber(self):
        alice = await self.join("alice", info={"name": "Alice"})
        own = await self.next_of(alice, "presence-join")  # the joiner hears its own join too
        self.assertEqual((own["topic"], own["user-id"], own["info"]), ("room:1", "alice", {"name": "Alice"}))
        bob = await self.join("bob", info={"name": "Bob", "color": "#0af"})
        for ws in (alice, bob):
            m = await self.next_of(ws, "presence-join")
            self.assertEqual(m["user-id"], "bob")
            self.assertEqual(m["topic"], "room:1")
            self.assertEqual(m["info"], {"name": "Bob", "color": "#0af"})
        self.assertNotIn("offset", m)

    async def test_token_without_info_joins_with_an_empty_object(self):
        ws = await self.join("carol")
        m = await self.next_of(ws, "presence-join")
        self.assertEqual(m["info"], {})

    async def test_second_tab_is_no_new_join_and_leave_comes_with_the_last_connection(self):
        watcher = await self.join("watcher")
        await self.next_of(watcher, "presence-join")
        tab1 = await self.join("dave")
        self.assertEqual((await self.next_of(watcher, "presence-join"))["user-id"], "dave")
        # Tabs on both loops (--threads 2): still one user.
        tabs = [await self.join("dave") for _ in range(4)]
        await self.expect_silence(watcher)
        for ws in [tab1] + tabs[:-1]:
            await ws.close()
        await self.expect_silence(watcher)
        reply = await self.presence(watcher)
        self.assertEqual(self.by_user(reply)["dave"]["connections"], 1)
        await tabs[-1].close()
        m = await self.next_of(watcher, "presence-leave")
        self.assertEqual((m["topic"], m["user-id"]), ("room:1", "dave"))
        self.assertNotIn("info", m)

    async def test_unsubscribe_of_the_last_connection_is_a_leave(self):
        watcher = await self.join("watcher")
        await self.next_of(watcher, "presence-join")
        erin = await self.join("erin")
        await self.next_of(watcher, "presence-join")
        reply = await self.command(erin, {"action": "unsubscribe", "topic": "room:1"})
        # erin's own join may come before her unsubscribed reply
        while reply["type"] == "presence-join":
            reply = await self.recv_json(erin)
        self.assertEqual(reply["type"], "unsubscribed", reply)
        m = await self.next_of(watcher, "presence-leave")
        self.assertEqual(m["user-id"], "erin")
        await self.expect_silence(erin)  # no longer subscribed: hears nothing of the topic

    async def test_topics_are_separate_and_untracked_topics_have_no_events(self):
        ws, _ = await self.connect(token=self.token("frank"))
        await self.subscribe(ws, "lobby")  # not a presence topic
        await self.expect_silence(ws)
        await self.subscribe(ws, "doc:a:b")
        self.assertEqual((await self.next_of(ws, "presence-join"))["topic"], "doc:a:b")
        await self.subscribe(ws, "room:2")
        self.assertEqual((await self.next_of(ws, "presence-join"))["topic"], "room:2")
        await self.expect_silence(ws)

    async def test_subscribe_through_the_api_joins(self):
        watcher = await self.join("watcher")
        await self.next_of(watcher, "presence-join")
        ws, connected = await self.connect(token=self.token("gina", info={"n": 1}))
        await self.api_ok("POST", "/api/subscribe", {"connection-id": connected["connection-id"], "topic": "room:1"})
        m = await self.next_of(watcher, "presence-join")
        self.assertEqual((m["user-id"], m["info"]), ("gina", {"n": 1}))
        await self.api_ok("POST", "/api/unsubscribe", {"connection-id": connected["connection-id"], "topic": "room:1"})
        self.assertEqual((await self.next_of(watcher, "presence-leave"))["user-id"], "gina")

    async def test_disconnect_through_the_api_leaves(self):
        watcher = await self.join("watcher")
        await self.next_of(watcher, "presence-join")
        await self.join("hal")
        await self.join("hal")
        await self.next_of(watcher, "presence-join")
        data = await self.api_ok("POST", "/api/disconnect", {"user-id": "hal"})
        self.assertEqual(data["disconnected"], 2)
        self.assertEqual((await self.next_of(watcher, "presence-leave"))["user-id"], "hal")
        await self.expect_silence(watcher)

    async def test_many_users_joining_at_once_are_each_announced_once(self):
        watcher = await self.join("watcher")
        await self.next_of(watcher, "presence-join")
        users = [f"u{i}" for i in range(40)]
        # Two connections per user, opened concurrently on both loops.
        await asyncio.gather(*(self.join(u) for u in users for _ in range(2)))
        seen = [(await self.next_of(watcher, "presence-join"))["user-id"] for _ in users]
        self.assertEqual(sorted(seen), sorted(users))
        await self.expect_silence(watcher)
        stats = await self.api_ok("GET", "/api/presence-stats?topic=room:1")
        self.assertEqual(stats, {"users": 41, "connections": 81})


class PresenceQueryTest(PresenceTestCase):

    async def test_presence_action_lists_users_with_their_connections_and_info(self):
        alice = await self.join("alice", info={"name": "Alice"})
        await self.join("bob")
        await self.join("bob")
        await self.next_of(alice, "presence-join")
        await self.next_of(alice, "presence-join")
        reply = await self.presence(alice, ref="p1")
        self.assertEqual(reply["type"], "presence")
        self.assertEqual(reply["topic"], "room:1")
        self.assertEqual(reply["ref"], "p1")
        self.assertFalse(reply["truncated"])
        users = self.by_user(reply)
        self.assertEqual(set(users), {"alice", "bob"})
        self.assertEqual(users["alice"], {"user-id": "alice", "connections": 1, "info": {"name": "Alice"}})
        self.assertEqual(users["bob"], {"user-id": "bob", "connections": 2, "info": {}})

    async def test_presence_of_an_empty_topic_and_without_subscribing(self):
        ws, _ = await self.connect(token=self.token("ivan"))
        reply = await self.presence(ws, "room:empty")
        self.assertEqual(reply, {"type": "presence", "topic": "room:empty", "users": [], "truncated": False})
        await self.join("judy", "room:x")
        reply = await self.presence(ws, "room:x")  # listing needs no subscription
        self.assertEqual([u["user-id"] for u in reply["users"]], ["judy"])

    async def test_topic_without_presence_is_a_bad_request(self):
        ws, _ = await self.connect()
        reply = await self.presence(ws, "lobby", ref=7)
        self.assertEqual(reply["type"], "error", reply)
        self.assertEqual(reply["code"], "bad-request")
        self.assertEqual(reply["ref"], 7)
        self.assertIn("presence", reply["message"])

    async def test_invalid_topic_and_missing_topic(self):
        ws, _ = await self.connect()
        self.assertEqual((await self.command(ws, {"action": "presence", "topic": "a b"}))["code"], "invalid-topic")
        self.assertEqual((await self.command(ws, {"action": "presence"}))["code"], "bad-request")

    @server_args("--presence-max-users", "2")
    async def test_listing_is_capped_and_says_truncated(self):
        ws = await self.join("a")
        await self.join("b")
        await self.join("c")
        for _ in range(3):
            await self.next_of(ws, "presence-join")
        reply = await self.presence(ws)
        self.assertEqual(len(reply["users"]), 2)
        self.assertTrue(reply["truncated"])
        stats = await self.api_ok("GET", "/api/presence-stats?topic=room:1")
        self.assertEqual(stats, {"users": 3, "connections": 3})
        data = await self.api_ok("GET", "/api/presence?topic=room:1")
        self.assertEqual(len(data["users"]), 2)
        self.assertTrue(data["truncated"])

    async def test_presence_events_and_list_stay_consistent_while_users_come_and_go(self):
        """A client that lists and then applies later events ends with the server's list."""
        watcher, _ = await self.connect(token=self.token("watcher"))
        await self.subscribe(watcher, "room:busy")

        async def churn(i):
            ws = await self.join(f"c{i % 7}", "room:busy")
            if i % 3:
                await ws.close()
        task = asyncio.gather(*(churn(i) for i in range(30)))
        await asyncio.sleep(0.05)
        await watcher.send(json.dumps({"action": "presence", "topic": "room:busy"}))
        await task
        present = await follow_listing(self, watcher, quiet=0.5, within=3)
        final = await self.api_ok("GET", "/api/presence?topic=room:busy")
        self.assertEqual(present, set(self.by_user(final)))


class PresenceOutboundBoundTest(PresenceTestCase):
    """Batches and listings bigger than a connection's send queue (--max-outbound-bytes) used to
    close it as a slow consumer (1008)."""
    SERVER_ARGS = PRESENCE + ["--max-outbound-bytes", "65536"]

    async def test_a_storm_of_big_joins_and_a_big_listing_keep_the_subscriber(self):
        watcher = await self.join("watcher", "room:big")
        await self.next_of(watcher, "presence-join")
        info = {"bio": "x" * 900}  # about 1 KiB a join: 100 of them are 1.6 times the queue
        await asyncio.gather(*(self.join(f"b{i}", "room:big", info=info) for i in range(100)))
        got = set()
        while len(got) < 100:
            m = await self.next_of(watcher, "presence-join")
            self.assertEqual(m["info"], info)
            got.add(m["user-id"])
        self.assertEqual(got, {f"b{i}" for i in range(100)})
        # 101 users listed would be about 100 KB: the answer stops at half the queue's bound.
        await watcher.send(json.dumps({"action": "presence", "topic": "room:big"}))
        raw = await asyncio.wait_for(watcher.recv(), DEFAULT_TIMEOUT)
        self.assertLessEqual(len(raw), 32768)
        listing = json.loads(raw)
        self.assertEqual(listing["type"], "presence", listing)
        self.assertTrue(listing["truncated"])
        self.assertGreater(len(listing["users"]), 10)
        self.assertLess(len(listing["users"]), 101)
        stats = await self.command(watcher, {"action": "presence", "topic": "room:big", "ref": 1})
        self.assertEqual(stats["type"], "presence")  # still open and answering
        status, data = await self.api("GET", "/api/presence?topic=room:big")
        self.assertEqual(status, 200)
        self.assertEqual(len(data["users"]), 101)  # the HTTP API is not bound by a send queue


class PresenceCompressionTest(PresenceTestCase):
    """A coalesced batch is several frames in one buffer; a client that negotiated
    permessage-deflate (Python `websockets` does by default) must read each as its own message."""
    SERVER_ARGS = PRESENCE + ["--compression", "on"]

    async def test_batches_and_listings_reach_a_compressing_client_intact(self):
        watcher = await self.join("watcher", "room:z")
        self.assertEqual(watcher.response_headers.get("Sec-WebSocket-Extensions"),
                         "permessage-deflate; server_no_context_takeover")
        await self.next_of(watcher, "presence-join")
        info = {"name": "n" * 200}
        await asyncio.gather(*(self.join(f"z{i}", "room:z", info=info) for i in range(40)))
        got = []
        while len(got) < 40:
            m = await self.next_of(watcher, "presence-join")
            self.assertEqual((m["topic"], m["info"]), ("room:z", info))
            got.append(m["user-id"])
        self.assertEqual(sorted(got), sorted(f"z{i}" for i in range(40)))
        listing = await self.presence(watcher, "room:z")
        self.assertEqual(len(listing["users"]), 41)  # big enough to go out compressed


class ForgedEventTest(PresenceTestCase):
    SERVER_ARGS = PRESENCE + ["--publish-patterns", "room:*"]

    async def test_nobody_publishes_presence_events(self):
        watcher = await self.join("watcher")
        await self.next_of(watcher, "presence-join")
        for kind in ("presence-join", "presence-leave"):
            forged = {"type": kind, "topic": "room:1", "user-id": "ghost"}
            reply = await self.command(watcher, {"action": "publish", "topic": "room:1", "message": forged, "ref": 1})
            self.assertEqual((reply["type"], reply["code"], reply["ref"]), ("error", "bad-request", 1), reply)
            status, data = await self.api("POST", "/api/publish", {"topic": "room:1", "message": forged})
            self.assertEqual(status, 400, data)
            self.assertIn("presence-join and presence-leave", data["error"])
            data = await self.api_ok("POST", "/api/batch", [{"kind": "publish", "topic": "room:1", "message": forged}])
            self.assertEqual(data["results"][0]["status"], 400, data)
        await self.expect_silence(watcher)
        reply = await self.presence(watcher)
        self.assertEqual([u["user-id"] for u in reply["users"]], ["watcher"])


class PresenceAuthorizationTest(PresenceTestCase):
    SERVER_ARGS = PRESENCE + ["--subscribe-policy", "claims"]

    async def test_presence_needs_the_right_to_subscribe(self):
        ws, _ = await self.connect(token=self.token("kim", topics=["room:open"]))
        reply = await self.presence(ws, "room:closed", ref="x")
        self.assertEqual(reply["type"], "error", reply)
        self.assertEqual(reply["code"], "forbidden")
        reply = await self.presence(ws, "room:open")
        self.assertEqual(reply["type"], "presence", reply)


class PresenceApiTest(PresenceTestCase):

    async def test_get_presence_and_stats(self):
        await self.join("alice", info={"name": "Alice"})
        await self.join("alice", "room:1")
        await self.join("bob")
        data = await self.api_ok("GET", "/api/presence?topic=room:1")
        self.assertEqual(data["type"], "presence")
        self.assertEqual(data["topic"], "room:1")
        self.assertFalse(data["truncated"])
        users = self.by_user(data)
        self.assertEqual(users["alice"]["connections"], 2)
        self.assertEqual(users["alice"]["info"], {"name": "Alice"})
        self.assertEqual(users["bob"]["connections"], 1)
        self.assertEqual(await self.api_ok("GET", "/api/presence-stats?topic=room:1"), {"users": 2, "connections": 3})
        self.assertEqual(await self.api_ok("GET", "/api/presence-stats?topic=room:none"), {"users": 0, "connections": 0})

    async def test_errors(self):
        for path, status in (("/api/presence?topic=lobby", 404), ("/api/presence-stats?topic=lobby", 404),
                             ("/api/presence", 400), ("/api/presence?topic=a%20b", 400),
                             ("/api/presence?topic=room:1&topic=room:2", 400)):
            with self.subTest(path=path):
                got, data = await self.api("GET", path)
                self.assertEqual(got, status, data)
                self.assertIn("error", data)
        got, _ = await self.api("POST", "/api/presence?topic=room:1", {})
        self.assertEqual(got, 405)
        status, _, _ = await asyncio.to_thread(http_request, self.port, "GET", "/api/presence?topic=room:1")
        self.assertEqual(status, 401)  # no API key


class PresenceHistoryTest(PresenceTestCase):
    SERVER_ARGS = PRESENCE + ["--history", "room:*=10"]

    async def test_presence_events_are_not_kept_in_history(self):
        ws = await self.join("alice")
        m = await self.next_of(ws, "presence-join")
        self.assertNotIn("offset", m)
        data = await self.api_ok("GET", "/api/history?topic=room:1")
        self.assertEqual(data["messages"], [])
        self.assertEqual((await self.api_ok("POST", "/api/publish",
                                            {"topic": "room:1", "message": {"type": "note"}}))["offset"], 1)


class InfoClaimTest(PresenceTestCase):

    def upgrade_status(self, token):
        path = "/ws?token=" + urllib.parse.quote(token, safe="")
        headers = {"Upgrade": "websocket", "Connection": "Upgrade",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
        status, _, _ = http_request(self.port, "GET", path, headers=headers)
        return status

    async def test_info_must_be_an_object_of_at_most_1_kib(self):
        fits = {"bio": "x" * (1024 - len('{"bio":""}'))}
        self.assertEqual(len(json.dumps(fits, separators=(",", ":"))), 1024)
        ws = await self.join("big", info=fits)
        self.assertEqual((await self.next_of(ws, "presence-join"))["info"], fits)
        too_big = {"bio": "x" * 1024}
        for info in (too_big, "a string", ["array"], 5, None):
            with self.subTest(info=str(info)[:20]):
                self.assertEqual(await asyncio.to_thread(self.upgrade_status, self.token("u", info=info)), 401)


class PresenceOptionTest(unittest.TestCase):
    """Bad options end the server with status 2 and a clear message."""

    def run_server(self, *args, env=None):
        cmd = [SERVER, "--port", str(free_port()), "--jwt-secret", random_secret(), "--api-key", random_secret(), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=DEFAULT_TIMEOUT * 2,
                              env={**os.environ, **(env or {})})

    def test_refused(self):
        for args, why in ((["--presence", "**:a"], "--presence"),
                          (["--presence", "room:*", "--presence-max-users", "0"], "--presence-max-users"),
                          (["--presence-max-users", "x"], "--presence-max-users")):
            with self.subTest(args=args):
                r = self.run_server(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(why, r.stderr)

    def test_bad_patterns_from_the_environment(self):
        r = self.run_server(env={"REALTIME_PRESENCE": "a:**:b"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--presence", r.stderr)


class PresenceStartupTest(PresenceTestCase):

    async def test_startup_line_names_the_patterns(self):
        self.assertIn("presence=room:*,doc:** max-users=1000 ", self.server.log())


if __name__ == "__main__":
    unittest.main()
