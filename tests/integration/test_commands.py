"""Client -> server commands, error replies, topic rules, publish patterns (docs/protocol.md)."""

import asyncio
import json
import signal
import socket
import time
import unittest

import websockets.exceptions

from rt_harness import RealtimeTestCase, server_args

ERROR_CODES = {"bad-request", "invalid-topic", "forbidden", "rate-limited", "too-many-subscriptions"}


class CommandTestBase(RealtimeTestCase):

    def assert_reply(self, reply, type_, **fields):
        self.assertEqual(reply.get("type"), type_, reply)
        for k, v in fields.items():
            key = k.replace("_", "-")
            self.assertIn(key, reply, reply)
            self.assertEqual(reply[key], v, reply)
            self.assertIs(type(reply[key]), type(v), f"{key} has the wrong JSON type: {reply}")

    def assert_error(self, reply, code, ref=None):
        self.assertEqual(reply.get("type"), "error", reply)
        self.assertEqual(reply.get("code"), code, reply)
        self.assertIsInstance(reply.get("message"), str, reply)
        self.assertTrue(reply["message"], f"error without human text: {reply}")
        if ref is not None:
            self.assertEqual(reply.get("ref"), ref, reply)
            self.assertIs(type(reply.get("ref")), type(ref), reply)

    async def subscribe(self, ws, topic, ref=None):
        cmd = {"action": "subscribe", "topic": topic}
        if ref is not None:
            cmd["ref"] = ref
        return await self.command(ws, cmd)

    async def expect_error_then_alive(self, ws, payload, code, ref=None):
        """Send payload, expect an error reply with code (and ref), then a working ping."""
        reply = await self.command(ws, payload)
        self.assert_error(reply, code, ref)
        await self.assert_ping_works(ws, ref=f"after-{code}")
        return reply


class BasicCommandsTest(CommandTestBase):

    async def test_subscribe_reply(self):
        ws, _ = await self.connect()
        self.assert_reply(await self.subscribe(ws, "order:123"), "subscribed", topic="order:123")

    async def test_unsubscribe_reply(self):
        ws, _ = await self.connect()
        await self.subscribe(ws, "order:123")
        reply = await self.command(ws, {"action": "unsubscribe", "topic": "order:123"})
        self.assert_reply(reply, "unsubscribed", topic="order:123")

    async def test_ping_pong(self):
        ws, _ = await self.connect()
        self.assert_reply(await self.command(ws, {"action": "ping"}), "pong")

    async def test_ref_echoed_as_string_and_number(self):
        ws, _ = await self.connect()
        for ref in ("abc-1", 17, 0, 12.5):
            with self.subTest(ref=ref):
                self.assert_reply(await self.command(ws, {"action": "ping", "ref": ref}), "pong", ref=ref)
                self.assert_reply(await self.subscribe(ws, "order:1", ref=ref), "subscribed",
                                  topic="order:1", ref=ref)
                reply = await self.command(ws, {"action": "unsubscribe", "topic": "order:1", "ref": ref})
                self.assert_reply(reply, "unsubscribed", topic="order:1", ref=ref)

    async def test_ref_echoed_on_errors(self):
        ws, _ = await self.connect()
        await self.expect_error_then_alive(ws, {"action": "dance", "ref": "r1"}, "bad-request", ref="r1")
        await self.expect_error_then_alive(ws, {"action": "subscribe", "topic": "a b", "ref": 5},
                                           "invalid-topic", ref=5)
        await self.expect_error_then_alive(ws, {"action": "subscribe", "topic": "user:99", "ref": "x"},
                                           "forbidden", ref="x")

    async def test_unsubscribe_stops_delivery(self):
        ws, c = await self.connect()
        await self.subscribe(ws, "order:9")
        await self.command(ws, {"action": "unsubscribe", "topic": "order:9"})
        res = await self.api_ok("POST", "/api/publish", {"topic": "order:9", "message": {"type": "t"}})
        self.assertEqual(res["delivered"], 0)
        await self.expect_silence(ws)

    async def test_unsubscribe_unknown_topic_still_replies(self):
        ws, _ = await self.connect()
        reply = await self.command(ws, {"action": "unsubscribe", "topic": "never:subscribed"})
        self.assert_reply(reply, "unsubscribed", topic="never:subscribed")

    async def test_subscribing_twice_is_idempotent(self):
        ws, _ = await self.connect()
        self.assert_reply(await self.subscribe(ws, "order:5"), "subscribed", topic="order:5")
        self.assert_reply(await self.subscribe(ws, "order:5"), "subscribed", topic="order:5")
        res = await self.api_ok("POST", "/api/publish", {"topic": "order:5", "message": {"type": "t", "n": 1}})
        self.assertEqual(res["delivered"], 1)
        msg = await self.recv_json(ws)
        self.assertEqual(msg["n"], 1)
        await self.expect_silence(ws, 0.5)
        # a single unsubscribe removes it
        await self.command(ws, {"action": "unsubscribe", "topic": "order:5"})
        res = await self.api_ok("POST", "/api/publish", {"topic": "order:5", "message": {"type": "t"}})
        self.assertEqual(res["delivered"], 0)

    async def test_messages_received_are_counted_in_metrics(self):
        ws, _ = await self.connect()
        before = await self.metric("realtime_messages_received_total")
        self.assertIsNotNone(before, "realtime_messages_received_total missing")
        for i in range(5):
            await self.command(ws, {"action": "ping", "ref": i})
        after = await self.metric("realtime_messages_received_total")
        self.assertGreaterEqual(after, before + 5)


class BadRequestTest(CommandTestBase):

    async def test_not_json(self):
        ws, _ = await self.connect()
        await self.expect_error_then_alive(ws, "this is not json {", "bad-request")

    async def test_json_but_not_an_object(self):
        ws, _ = await self.connect()
        for payload in ('["action","ping"]', '"ping"', "42", "null", "true"):
            with self.subTest(payload=payload):
                await self.expect_error_then_alive(ws, payload, "bad-request")

    async def test_unknown_action(self):
        ws, _ = await self.connect()
        await self.expect_error_then_alive(ws, {"action": "dance", "ref": 1}, "bad-request", ref=1)

    async def test_missing_or_non_string_action(self):
        ws, _ = await self.connect()
        await self.expect_error_then_alive(ws, {"topic": "x", "ref": "a"}, "bad-request", ref="a")
        await self.expect_error_then_alive(ws, {"action": 5, "ref": "b"}, "bad-request", ref="b")

    async def test_missing_topic(self):
        ws, _ = await self.connect()
        for action in ("subscribe", "unsubscribe", "publish"):
            with self.subTest(action=action):
                await self.expect_error_then_alive(ws, {"action": action, "ref": action},
                                                   "bad-request", ref=action)

    async def test_non_string_topic_is_rejected(self):
        ws, _ = await self.connect()
        reply = await self.command(ws, {"action": "subscribe", "topic": 123, "ref": 1})
        self.assertEqual(reply["type"], "error", reply)
        self.assertIn(reply["code"], {"bad-request", "invalid-topic"}, reply)
        self.assertEqual(reply.get("ref"), 1)
        await self.assert_ping_works(ws)

    async def test_error_codes_are_from_the_contract(self):
        ws, _ = await self.connect()
        for payload in ("{", "[]", {"action": "x"}, {"action": "subscribe"},
                        {"action": "subscribe", "topic": ""}, {"action": "subscribe", "topic": "user:1"},
                        {"action": "publish", "topic": "chat:x", "message": {"type": "t"}}):
            reply = await self.command(ws, payload if isinstance(payload, str) else json.dumps(payload))
            self.assertEqual(reply["type"], "error", reply)
            self.assertIn(reply["code"], ERROR_CODES, reply)


class TopicValidationTest(CommandTestBase):

    async def test_invalid_topics(self):
        ws, _ = await self.connect()
        for topic in ("a b", "", "x" * 257, "tab\there", "new\nline", "ctl\x01x", "trailing ",
                      "\u00e9" * 129):
            with self.subTest(topic=topic[:20], length=len(topic.encode())):
                await self.expect_error_then_alive(
                    ws, {"action": "subscribe", "topic": topic, "ref": "t"}, "invalid-topic", ref="t")

    async def test_topic_length_limit_counts_bytes(self):
        ws, _ = await self.connect()
        self.assert_reply(await self.subscribe(ws, "x" * 256), "subscribed", topic="x" * 256)
        self.assert_reply(await self.subscribe(ws, "\u00e9" * 128), "subscribed", topic="\u00e9" * 128)
        self.assert_reply(await self.subscribe(ws, "a"), "subscribed", topic="a")

    async def test_invalid_topic_on_unsubscribe(self):
        ws, _ = await self.connect()
        await self.expect_error_then_alive(ws, {"action": "unsubscribe", "topic": "a b"}, "invalid-topic")


class TopicPolicyTest(CommandTestBase):

    async def test_foreign_user_topic_forbidden(self):
        ws, _ = await self.connect(user_id="42")
        for topic in ("user:99", "user:99:inbox", "user:420", "user:4", "user:4:2"):
            with self.subTest(topic=topic):
                await self.expect_error_then_alive(ws, {"action": "subscribe", "topic": topic, "ref": topic},
                                                   "forbidden", ref=topic)

    async def test_own_user_topic_allowed(self):
        ws, _ = await self.connect(user_id="42")
        self.assert_reply(await self.subscribe(ws, "user:42"), "subscribed", topic="user:42")
        self.assert_reply(await self.subscribe(ws, "user:42:inbox"), "subscribed", topic="user:42:inbox")

    async def test_forbidden_subscription_receives_nothing(self):
        ws, _ = await self.connect(user_id="42")
        await self.expect_error_then_alive(ws, {"action": "subscribe", "topic": "user:99"}, "forbidden")
        res = await self.api_ok("POST", "/api/publish", {"topic": "user:99", "message": {"type": "secret"}})
        self.assertEqual(res["delivered"], 0)
        await self.expect_silence(ws)

    async def test_role_topic_needs_the_role(self):
        admin, _ = await self.connect(user_id="1", roles=["admin"])
        user, _ = await self.connect(user_id="2", roles=["user"])
        nobody, _ = await self.connect(user_id="3")
        self.assert_reply(await self.subscribe(admin, "role:admin"), "subscribed", topic="role:admin")
        self.assert_reply(await self.subscribe(admin, "role:admin:alerts"), "subscribed",
                          topic="role:admin:alerts")
        await self.expect_error_then_alive(admin, {"action": "subscribe", "topic": "role:administrator"},
                                           "forbidden")
        await self.expect_error_then_alive(admin, {"action": "subscribe", "topic": "role:user"}, "forbidden")
        for ws in (user, nobody):
            await self.expect_error_then_alive(ws, {"action": "subscribe", "topic": "role:admin"}, "forbidden")
            await self.expect_error_then_alive(ws, {"action": "subscribe", "topic": "role:admin:alerts"},
                                               "forbidden")
        self.assert_reply(await self.subscribe(user, "role:user"), "subscribed", topic="role:user")

    async def test_other_topics_open_to_everyone(self):
        ws, _ = await self.connect(user_id="42")
        for topic in ("order:123", "chat:general", "users:99", "roles:admin", "x"):
            with self.subTest(topic=topic):
                self.assert_reply(await self.subscribe(ws, topic), "subscribed", topic=topic)


class PublishDefaultTest(CommandTestBase):

    async def test_publish_forbidden_without_patterns(self):
        sub, _ = await self.connect(user_id="1")
        await self.subscribe(sub, "chat:general")
        pub, _ = await self.connect(user_id="2")
        await self.expect_error_then_alive(
            pub, {"action": "publish", "topic": "chat:general", "message": {"type": "hi"}, "ref": 3},
            "forbidden", ref=3)
        await self.expect_silence(sub)


class PublishPatternsTest(CommandTestBase):
    SERVER_ARGS = ["--publish-patterns", "chat:*"]

    async def test_publish_delivers_with_topic_and_timestamp(self):
        sub1, _ = await self.connect(user_id="1")
        sub2, _ = await self.connect(user_id="2")
        other, _ = await self.connect(user_id="3")
        pub, _ = await self.connect(user_id="4")
        await self.subscribe(sub1, "chat:general")
        await self.subscribe(sub2, "chat:general")
        await self.subscribe(other, "chat:random")
        reply = await self.command(pub, {"action": "publish", "topic": "chat:general", "ref": "p1",
                                         "message": {"type": "chat", "text": "hello", "n": [1, 2]}})
        self.assert_reply(reply, "published", topic="chat:general", delivered=2, ref="p1")
        for ws in (sub1, sub2):
            msg = await self.recv_json(ws)
            self.assertEqual(msg["type"], "chat")
            self.assertEqual(msg["text"], "hello")
            self.assertEqual(msg["n"], [1, 2])
            self.assertEqual(msg["topic"], "chat:general")
            self.assert_timestamp(msg["timestamp"])
            await self.expect_silence(ws)
        await self.expect_silence(other)

    async def test_publish_without_subscribers_delivers_zero(self):
        pub, _ = await self.connect()
        reply = await self.command(pub, {"action": "publish", "topic": "chat:empty", "message": {"type": "x"}})
        self.assert_reply(reply, "published", topic="chat:empty", delivered=0)

    async def test_publish_keeps_existing_timestamp_and_topic(self):
        sub, _ = await self.connect(user_id="1")
        pub, _ = await self.connect(user_id="2")
        await self.subscribe(sub, "chat:general")
        ts = "2020-01-02T03:04:05.678Z"
        reply = await self.command(pub, {"action": "publish", "topic": "chat:general",
                                         "message": {"type": "x", "timestamp": ts, "topic": "mine"}})
        self.assert_reply(reply, "published", delivered=1)
        msg = await self.recv_json(sub)
        self.assertEqual(msg["timestamp"], ts)
        self.assertEqual(msg["topic"], "mine")

    async def test_single_star_matches_one_segment_only(self):
        sub, _ = await self.connect(user_id="1")
        pub, _ = await self.connect(user_id="2")
        await self.subscribe(sub, "chat:a:b")
        for topic in ("chat:a:b", "chatroom:a", "chat", "other:general"):
            with self.subTest(topic=topic):
                await self.expect_error_then_alive(
                    pub, {"action": "publish", "topic": topic, "message": {"type": "x"}, "ref": topic},
                    "forbidden", ref=topic)
        await self.expect_silence(sub)

    async def test_publish_bad_message(self):
        pub, _ = await self.connect()
        await self.expect_error_then_alive(pub, {"action": "publish", "topic": "chat:x", "ref": 1},
                                           "bad-request", ref=1)
        await self.expect_error_then_alive(pub, {"action": "publish", "topic": "chat:x", "message": "hi", "ref": 2},
                                           "bad-request", ref=2)
        await self.expect_error_then_alive(pub, {"action": "publish", "topic": "chat:x",
                                                 "message": {"text": "no type"}, "ref": 3},
                                           "bad-request", ref=3)

    async def test_publish_invalid_topic(self):
        pub, _ = await self.connect()
        await self.expect_error_then_alive(pub, {"action": "publish", "topic": "chat:a b",
                                                 "message": {"type": "x"}}, "invalid-topic")

    async def test_client_publishes_arrive_in_order_exactly_once(self):
        sub1, _ = await self.connect(user_id="1")
        sub2, _ = await self.connect(user_id="2")
        pub, _ = await self.connect(user_id="3")
        for ws in (sub1, sub2):
            await self.subscribe(ws, "chat:seq")
        n = 100  # pipelined, without waiting for the replies
        for i in range(n):
            await pub.send(json.dumps({"action": "publish", "topic": "chat:seq", "ref": i,
                                       "message": {"type": "seq", "i": i}}))
        replies = [await self.recv_json(pub) for _ in range(n)]
        self.assertEqual([(r["type"], r.get("ref"), r.get("delivered")) for r in replies],
                         [("published", i, 2) for i in range(n)])
        for ws in (sub1, sub2):
            got = [(await self.recv_json(ws))["i"] for _ in range(n)]
            self.assertEqual(got, list(range(n)))
            await self.expect_silence(ws)

    @server_args("--publish-patterns", "chat:**")
    async def test_double_star_matches_the_rest(self):
        sub, _ = await self.connect(user_id="1")
        pub, _ = await self.connect(user_id="2")
        await self.subscribe(sub, "chat:a:b")
        reply = await self.command(pub, {"action": "publish", "topic": "chat:a:b", "message": {"type": "x"}})
        self.assert_reply(reply, "published", topic="chat:a:b", delivered=1)
        self.assertEqual((await self.recv_json(sub))["topic"], "chat:a:b")
        reply = await self.command(pub, {"action": "publish", "topic": "chat:general", "message": {"type": "x"}})
        self.assert_reply(reply, "published", topic="chat:general", delivered=0)
        await self.expect_error_then_alive(
            pub, {"action": "publish", "topic": "chatter:a", "message": {"type": "x"}}, "forbidden")

    @server_args("--publish-patterns", "chat:*,room:*:msgs")
    async def test_pattern_list(self):
        pub, _ = await self.connect()
        for topic in ("chat:x", "room:7:msgs"):
            reply = await self.command(pub, {"action": "publish", "topic": topic, "message": {"type": "x"}})
            self.assert_reply(reply, "published", topic=topic, delivered=0)
        await self.expect_error_then_alive(
            pub, {"action": "publish", "topic": "room:7:other", "message": {"type": "x"}}, "forbidden")


class SubscriptionLimitTest(CommandTestBase):
    SERVER_ARGS = ["--max-subscriptions", "3"]

    async def test_too_many_subscriptions(self):
        ws, _ = await self.connect()
        for t in ("t:1", "t:2", "t:3"):
            self.assert_reply(await self.subscribe(ws, t), "subscribed", topic=t)
        await self.expect_error_then_alive(ws, {"action": "subscribe", "topic": "t:4", "ref": 4},
                                           "too-many-subscriptions", ref=4)
        # re-subscribing an existing topic at the limit is still idempotent
        self.assert_reply(await self.subscribe(ws, "t:1"), "subscribed", topic="t:1")
        # the failed subscription did not happen
        res = await self.api_ok("POST", "/api/publish", {"topic": "t:4", "message": {"type": "x"}})
        self.assertEqual(res["delivered"], 0)
        # freeing a slot allows a new topic
        await self.command(ws, {"action": "unsubscribe", "topic": "t:1"})
        self.assert_reply(await self.subscribe(ws, "t:4"), "subscribed", topic="t:4")

    async def test_limit_is_per_connection(self):
        ws1, _ = await self.connect()
        ws2, _ = await self.connect()
        for t in ("t:1", "t:2", "t:3"):
            await self.subscribe(ws1, t)
        self.assert_reply(await self.subscribe(ws2, "t:4"), "subscribed", topic="t:4")


class FloodTest(CommandTestBase):

    async def test_ping_flood_every_command_answered_and_connection_survives(self):
        ws, _ = await self.connect()
        n = 2000
        total, refs, kinds, errors_without_ref = 0, set(), {"pong": 0, "rate-limited": 0}, 0

        def account(msg):
            nonlocal total, errors_without_ref
            total += 1
            if msg.get("type") == "pong":
                kinds["pong"] += 1
            else:
                self.assertEqual(msg.get("type"), "error", msg)
                self.assertEqual(msg.get("code"), "rate-limited", msg)
                kinds["rate-limited"] += 1
                if "ref" not in msg:
                    errors_without_ref += 1
                    return
            ref = msg.get("ref")
            self.assertIsInstance(ref, int, msg)
            self.assertNotIn(ref, refs, f"duplicate reply for ref {ref}")
            refs.add(ref)

        async def sender():
            for i in range(n):
                await ws.send(json.dumps({"action": "ping", "ref": i}))

        send_task = asyncio.create_task(sender())
        deadline = time.monotonic() + 30
        try:
            while total < n and time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), min(5.0, max(0.01, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    break
                except websockets.exceptions.ConnectionClosed as exc:
                    self.fail(f"the flood closed the connection after {total} replies: {exc}")
                account(json.loads(raw))
        finally:
            await asyncio.wait_for(send_task, 10)
        note = f"{total} replies to {n} pings: {kinds}, {errors_without_ref} errors without ref"

        # The connection stays open and answers again once the limiter window has passed.
        self.assertTrue(ws.open, f"connection closed by the flood ({note})")
        await asyncio.sleep(1.5)
        while True:  # drain late flood replies
            try:
                account(json.loads(await asyncio.wait_for(ws.recv(), 0.3)))
            except asyncio.TimeoutError:
                break
        note = f"{total} replies to {n} pings: {kinds}, {errors_without_ref} errors without ref"
        for attempt in range(10):
            reply = await self.command(ws, {"action": "ping", "ref": f"later-{attempt}"})
            if reply["type"] == "pong":
                self.assertEqual(reply.get("ref"), f"later-{attempt}", reply)
                break
            self.assertEqual(reply.get("code"), "rate-limited", reply)
            await asyncio.sleep(0.5)
        else:
            self.fail(f"no pong again within 5 s after the flood ({note})")
        print(f"\n[flood] {note}", flush=True)
        self.assertEqual(errors_without_ref, 0,
                         f"rate-limited errors must echo the command's ref (docs/protocol.md: every reply echoes it); {note}")


if __name__ == "__main__":
    unittest.main()


class ManyReadyConnectionsTest(CommandTestBase):
    """Loops with more sockets ready at once than a loop takes per readiness batch (256; the
    connections are spread over the server's two loops): every request is answered, and
    connections that hang up inside the same batch are finished without disturbing the others."""

    @server_args("--commands-per-second", "0")
    async def test_every_connection_ready_at_once_is_answered(self):
        from rt_harness import OP_TEXT, RawWS, encode_frame
        n = 900
        clients = []
        try:
            for i in range(n):
                clients.append(RawWS(self.port, self.token(user_id=f"u{i}")))
            for c in clients:
                self.assertEqual(c.recv_json()["type"], "connected")
            await self.eventually(lambda: self.metric("realtime_connections"), lambda v: v == n,
                                  what="all connections registered")
            frames = [encode_frame(OP_TEXT, json.dumps({"action": "ping", "ref": i}).encode()) for i in range(n)]
            # Every request is sent while the server is stopped, so each loop finds all of its
            # sockets ready at once; every third client hangs up right after its request, so the
            # loop meets end-of-stream among the readable sockets.
            self.server.signal(signal.SIGSTOP)
            try:
                for i, c in enumerate(clients):
                    c.send_raw(frames[i])
                    if i % 3 == 0:
                        c.sock.shutdown(socket.SHUT_WR)
            finally:
                self.server.signal(signal.SIGCONT)
            for i, c in enumerate(clients):
                reply = c.recv_json(timeout=10)
                self.assertEqual((reply.get("type"), reply.get("ref")), ("pong", i), reply)
            # The ones that hung up are finished (and no longer watched); the rest still answer.
            await self.eventually(lambda: self.metric("realtime_connections"), lambda v: v == n - (n + 2) // 3,
                                  what="half-closed connections finished")
            for i, c in enumerate(clients):
                if i % 3:
                    c.send_raw(frames[i])
            for i, c in enumerate(clients):
                if i % 3:
                    self.assertEqual(c.recv_json(timeout=10).get("ref"), i)
        finally:
            for c in clients:
                c.sock.close()
