"""The HTTP server API (docs/protocol.md, "Server API"): delivery semantics and ordering, /metrics."""

import asyncio
import json
import unittest

from rt_harness import RealtimeTestCase, raw_http_exchange, HOST

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


class ApiAuthTest(RealtimeTestCase):

    async def test_missing_key_is_401(self):
        for method, path, body in (("GET", "/api/connections", None),
                                   ("POST", "/api/broadcast", {"message": {"type": "x"}}),
                                   ("POST", "/api/send-to-user", {"user-id": "42", "message": {"type": "x"}})):
            with self.subTest(path=path):
                status, data = await self.api(method, path, body, key=None)
                self.assertEqual(status, 401, data)
                self.assertEqual(data, {"error": "Unauthorized"})

    async def test_wrong_key_is_401(self):
        for key in ("wrong", self.server.api_key + "x", self.server.api_key[:-1], ""):
            with self.subTest(key=key):
                status, data = await self.api("GET", "/api/connections", key=key)
                self.assertEqual(status, 401, data)
                self.assertEqual(data, {"error": "Unauthorized"})

    async def test_wrong_scheme_is_401(self):
        status, data = await self.api("GET", "/api/connections", key=None,
                                      headers={"Authorization": f"Basic {self.server.api_key}"})
        self.assertEqual(status, 401, data)

    async def test_jwt_is_not_an_api_key(self):
        status, data = await self.api("GET", "/api/connections", key=self.token())
        self.assertEqual(status, 401, data)

    async def test_unauthorized_call_has_no_effect(self):
        ws, _ = await self.connect()
        status, _ = await self.api("POST", "/api/broadcast", {"message": {"type": "x"}}, key="wrong")
        self.assertEqual(status, 401)
        await self.expect_silence(ws)


class ApiValidationTest(RealtimeTestCase):

    async def assert_400(self, path, body):
        status, data = await self.api("POST", path, body)
        self.assertEqual(status, 400, f"{path} {body!r} -> {status} {data!r}")
        self.assertIsInstance(data, dict, data)
        self.assertIsInstance(data.get("error"), str, data)
        self.assertTrue(data["error"])

    async def test_bad_json(self):
        for body in ("{", "not json", "", '{"message": {"type": "x"}'):
            with self.subTest(body=body):
                await self.assert_400("/api/broadcast", body)

    async def test_body_not_an_object(self):
        for body in ("[]", '"x"', "42", "null"):
            with self.subTest(body=body):
                await self.assert_400("/api/broadcast", body)

    async def test_missing_fields(self):
        cases = [
            ("/api/send-to-user", {"message": {"type": "x"}}),
            ("/api/send-to-user", {"user-id": "42"}),
            ("/api/send-to-role", {"message": {"type": "x"}}),
            ("/api/send-to-role", {"role": "admin"}),
            ("/api/broadcast", {}),
            ("/api/send-to-connection", {"message": {"type": "x"}}),
            ("/api/send-to-connection", {"connection-id": UNKNOWN_ID}),
            ("/api/publish", {"message": {"type": "x"}}),
            ("/api/publish", {"topic": "order:1"}),
            ("/api/subscribe", {"topic": "order:1"}),
            ("/api/subscribe", {"connection-id": UNKNOWN_ID}),
            ("/api/unsubscribe", {"topic": "order:1"}),
            ("/api/unsubscribe", {"connection-id": UNKNOWN_ID}),
            ("/api/disconnect", {}),
        ]
        for path, body in cases:
            with self.subTest(path=path, body=body):
                await self.assert_400(path, body)

    async def test_message_not_an_object(self):
        for message in ("hello", [1, 2], 5, None):
            with self.subTest(message=message):
                await self.assert_400("/api/broadcast", {"message": message})
                await self.assert_400("/api/send-to-user", {"user-id": "42", "message": message})

    async def test_message_without_string_type(self):
        ws, _ = await self.connect()
        for message in ({}, {"text": "x"}, {"type": 5}, {"type": None}, {"type": ["x"]}):
            with self.subTest(message=message):
                await self.assert_400("/api/broadcast", {"message": message})
                await self.assert_400("/api/send-to-user", {"user-id": "42", "message": message})
                await self.assert_400("/api/publish", {"topic": "t", "message": message})
        await self.expect_silence(ws)

    async def test_unknown_path_404(self):
        for method, path in (("POST", "/api/nope"), ("GET", "/api/nope"), ("GET", "/nowhere")):
            with self.subTest(path=path):
                status, data = await self.api(method, path, {"message": {"type": "x"}} if method == "POST" else None)
                self.assertEqual(status, 404, data)

    async def test_wrong_method_405(self):
        for method, path in (("GET", "/api/broadcast"), ("GET", "/api/send-to-user"),
                             ("POST", "/api/connections"), ("DELETE", "/api/publish")):
            with self.subTest(method=method, path=path):
                status, data = await self.api(method, path, None)
                self.assertEqual(status, 405, data)

    async def test_body_over_1_mib_is_413(self):
        ws, _ = await self.connect()
        pad = "x" * (1024 * 1024 + 1024)
        body = json.dumps({"message": {"type": "big", "pad": pad}}).encode()
        head = (f"POST /api/broadcast HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                f"Authorization: Bearer {self.server.api_key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        status, data = await asyncio.to_thread(raw_http_exchange, self.port, head, body)
        self.assertEqual(status, 413, data[:300])
        await self.expect_silence(ws)
        # the server is fine afterwards
        data = await self.api_ok("GET", "/api/connections")
        self.assertEqual(data["count"], 1)

    async def test_body_just_under_1_mib_is_accepted(self):
        ws, _ = await self.connect()
        body = {"message": {"type": "big", "pad": ""}}
        overhead = len(json.dumps(body).encode())
        body["message"]["pad"] = "y" * (1024 * 1024 - overhead - 4096)
        res = await self.api_ok("POST", "/api/broadcast", body)
        self.assertEqual(res["delivered"], 1)
        msg = await self.recv_json(ws)
        self.assertEqual(len(msg["pad"]), len(body["message"]["pad"]))


class ApiDeliveryTest(RealtimeTestCase):

    async def test_send_to_user_reaches_all_devices(self):
        devices = [await self.connect(user_id="42") for _ in range(3)]
        other, _ = await self.connect(user_id="43")
        res = await self.api_ok("POST", "/api/send-to-user", {"user-id": "42", "message": {"type": "note", "n": 1}})
        self.assertEqual(res, {"delivered": 3})
        for ws, _ in devices:
            msg = await self.recv_json(ws)
            self.assertEqual(msg["type"], "note")
            self.assertEqual(msg["n"], 1)
            self.assert_timestamp(msg["timestamp"])
            await self.expect_silence(ws, 0.2)
        await self.expect_silence(other)

    async def test_send_to_unknown_user_delivers_zero(self):
        ws, _ = await self.connect(user_id="42")
        res = await self.api_ok("POST", "/api/send-to-user", {"user-id": "4", "message": {"type": "x"}})
        self.assertEqual(res, {"delivered": 0})
        await self.expect_silence(ws)

    async def test_send_to_role(self):
        a1, _ = await self.connect(user_id="1", roles=["admin"])
        a2, _ = await self.connect(user_id="2", roles=["user", "admin"])
        u, _ = await self.connect(user_id="3", roles=["user"])
        n, _ = await self.connect(user_id="4")
        res = await self.api_ok("POST", "/api/send-to-role", {"role": "admin", "message": {"type": "alert"}})
        self.assertEqual(res, {"delivered": 2})
        for ws in (a1, a2):
            msg = await self.recv_json(ws)
            self.assertEqual(msg["type"], "alert")
            self.assert_timestamp(msg["timestamp"])
        for ws in (u, n, a1, a2):
            await self.expect_silence(ws, 0.2)
        res = await self.api_ok("POST", "/api/send-to-role", {"role": "nobody", "message": {"type": "alert"}})
        self.assertEqual(res, {"delivered": 0})

    async def test_broadcast_reaches_everyone(self):
        clients = [await self.connect(user_id=str(i), roles=["r"] if i % 2 else None) for i in range(4)]
        res = await self.api_ok("POST", "/api/broadcast", {"message": {"type": "hello", "body": {"deep": [1]}}})
        self.assertEqual(res, {"delivered": 4})
        for ws, _ in clients:
            msg = await self.recv_json(ws)
            self.assertEqual(msg["type"], "hello")
            self.assertEqual(msg["body"], {"deep": [1]})
            await self.expect_silence(ws, 0.2)

    async def test_broadcast_with_no_connections(self):
        self.assertEqual(await self.api_ok("POST", "/api/broadcast", {"message": {"type": "x"}}), {"delivered": 0})

    async def test_send_to_connection(self):
        target, c = await self.connect(user_id="42")
        other, _ = await self.connect(user_id="42")
        res = await self.api_ok("POST", "/api/send-to-connection",
                                {"connection-id": c["connection-id"], "message": {"type": "direct"}})
        self.assertEqual(res, {"delivered": True})
        self.assertEqual((await self.recv_json(target))["type"], "direct")
        await self.expect_silence(other)
        res = await self.api_ok("POST", "/api/send-to-connection",
                                {"connection-id": UNKNOWN_ID, "message": {"type": "direct"}})
        self.assertEqual(res, {"delivered": False})
        await target.close()
        await self.eventually(
            lambda: self.api_ok("POST", "/api/send-to-connection",
                                {"connection-id": c["connection-id"], "message": {"type": "late"}}),
            lambda r: r == {"delivered": False}, what="send to a closed connection is false")
        await self.expect_silence(other)

    async def test_message_with_timestamp_keeps_it(self):
        ws, c = await self.connect()
        ts = "2021-06-07T08:09:10.111Z"
        await self.api_ok("POST", "/api/send-to-connection",
                          {"connection-id": c["connection-id"], "message": {"type": "x", "timestamp": ts}})
        self.assertEqual((await self.recv_json(ws))["timestamp"], ts)

    async def test_direct_messages_get_no_topic(self):
        ws, c = await self.connect()
        await self.api_ok("POST", "/api/send-to-user", {"user-id": "42", "message": {"type": "x"}})
        self.assertNotIn("topic", await self.recv_json(ws))


class ApiTopicTest(RealtimeTestCase):

    async def test_publish_to_topic(self):
        s1, c1 = await self.connect(user_id="1")
        s2, c2 = await self.connect(user_id="2")
        bystander, _ = await self.connect(user_id="3")
        reply = await self.command(s1, {"action": "subscribe", "topic": "order:123"})
        self.assertEqual(reply["type"], "subscribed")
        self.assertEqual(await self.api_ok("POST", "/api/subscribe",
                                           {"connection-id": c2["connection-id"], "topic": "order:123"}),
                         {"subscribed": True})
        res = await self.api_ok("POST", "/api/publish", {"topic": "order:123", "message": {"type": "status", "v": 2}})
        self.assertEqual(res, {"delivered": 2})
        for ws in (s1, s2):
            msg = await self.recv_json(ws)
            self.assertEqual(msg["type"], "status")
            self.assertEqual(msg["v"], 2)
            self.assertEqual(msg["topic"], "order:123")
            self.assert_timestamp(msg["timestamp"])
        await self.expect_silence(bystander)

    async def test_publish_keeps_timestamp_and_topic_already_present(self):
        ws, c = await self.connect()
        await self.command(ws, {"action": "subscribe", "topic": "order:1"})
        ts = "2022-02-02T02:02:02.002Z"
        await self.api_ok("POST", "/api/publish",
                          {"topic": "order:1", "message": {"type": "x", "timestamp": ts, "topic": "custom"}})
        msg = await self.recv_json(ws)
        self.assertEqual(msg["timestamp"], ts)
        self.assertEqual(msg["topic"], "custom")

    async def test_publish_to_empty_topic_delivers_zero(self):
        ws, _ = await self.connect()
        self.assertEqual(await self.api_ok("POST", "/api/publish", {"topic": "nobody:here", "message": {"type": "x"}}),
                         {"delivered": 0})
        await self.expect_silence(ws)

    async def test_api_subscribe_and_unsubscribe(self):
        ws, c = await self.connect()
        cid = c["connection-id"]
        self.assertEqual(await self.api_ok("POST", "/api/subscribe", {"connection-id": cid, "topic": "news"}),
                         {"subscribed": True})
        self.assertEqual((await self.api_ok("POST", "/api/publish", {"topic": "news", "message": {"type": "n"}}))
                         ["delivered"], 1)
        self.assertEqual((await self.recv_json(ws))["topic"], "news")
        self.assertEqual(await self.api_ok("POST", "/api/unsubscribe", {"connection-id": cid, "topic": "news"}),
                         {"unsubscribed": True})
        self.assertEqual((await self.api_ok("POST", "/api/publish", {"topic": "news", "message": {"type": "n"}}))
                         ["delivered"], 0)
        await self.expect_silence(ws)

    async def test_api_subscribe_unknown_connection_is_false(self):
        self.assertEqual(await self.api_ok("POST", "/api/subscribe", {"connection-id": UNKNOWN_ID, "topic": "news"}),
                         {"subscribed": False})
        self.assertEqual(await self.api_ok("POST", "/api/unsubscribe", {"connection-id": UNKNOWN_ID, "topic": "news"}),
                         {"unsubscribed": False})
        self.assertEqual((await self.api_ok("POST", "/api/publish", {"topic": "news", "message": {"type": "n"}}))
                         ["delivered"], 0)

    async def test_client_unsubscribe_undoes_api_subscribe(self):
        ws, c = await self.connect()
        await self.api_ok("POST", "/api/subscribe", {"connection-id": c["connection-id"], "topic": "news"})
        reply = await self.command(ws, {"action": "unsubscribe", "topic": "news"})
        self.assertEqual(reply["type"], "unsubscribed")
        self.assertEqual((await self.api_ok("POST", "/api/publish", {"topic": "news", "message": {"type": "n"}}))
                         ["delivered"], 0)


class ApiConnectionsTest(RealtimeTestCase):

    async def count(self):
        return (await self.api_ok("GET", "/api/connections"))["count"]

    async def test_connections_count(self):
        self.assertEqual(await self.api_ok("GET", "/api/connections"), {"count": 0})
        clients = [await self.connect(user_id=str(i)) for i in range(3)]
        await self.eventually(self.count, lambda n: n == 3, what="count == 3")
        await clients[0][0].close()
        await self.eventually(self.count, lambda n: n == 2, what="count == 2 after one close")

    async def test_disconnect_by_connection_id(self):
        victim, c = await self.connect(user_id="42")
        survivor, _ = await self.connect(user_id="42")
        res = await self.api_ok("POST", "/api/disconnect", {"connection-id": c["connection-id"]})
        self.assertEqual(res, {"disconnected": 1})
        await self.wait_closed_code(victim)
        await self.assert_ping_works(survivor)
        await self.eventually(self.count, lambda n: n == 1, what="count == 1")
        res = await self.api_ok("POST", "/api/disconnect", {"connection-id": c["connection-id"]})
        self.assertEqual(res, {"disconnected": 0})

    async def test_disconnect_by_user_id(self):
        a, _ = await self.connect(user_id="42")
        b, _ = await self.connect(user_id="42")
        other, _ = await self.connect(user_id="43")
        res = await self.api_ok("POST", "/api/disconnect", {"user-id": "42"})
        self.assertEqual(res, {"disconnected": 2})
        await self.wait_closed_code(a)
        await self.wait_closed_code(b)
        await self.assert_ping_works(other)
        await self.eventually(self.count, lambda n: n == 1, what="count == 1")
        res = await self.api_ok("POST", "/api/send-to-user", {"user-id": "42", "message": {"type": "x"}})
        self.assertEqual(res, {"delivered": 0})

    async def test_disconnect_unknown(self):
        ws, _ = await self.connect(user_id="42")
        self.assertEqual(await self.api_ok("POST", "/api/disconnect", {"user-id": "nobody"}), {"disconnected": 0})
        self.assertEqual(await self.api_ok("POST", "/api/disconnect", {"connection-id": UNKNOWN_ID}),
                         {"disconnected": 0})
        await self.assert_ping_works(ws)


class ApiOrderingTest(RealtimeTestCase):

    async def test_500_sends_arrive_in_order_exactly_once(self):
        ws, c = await self.connect(user_id="42")
        cid = c["connection-id"]
        await self.command(ws, {"action": "subscribe", "topic": "seq"})
        n = 500
        received = []

        async def reader():
            while len(received) < n:
                received.append(await self.recv_json(ws, timeout=10))

        task = asyncio.create_task(reader())
        # alternate between the delivery paths: order holds across endpoints
        routes = [
            ("/api/send-to-connection", lambda i: {"connection-id": cid, "message": {"type": "seq", "i": i}}),
            ("/api/send-to-user", lambda i: {"user-id": "42", "message": {"type": "seq", "i": i}}),
            ("/api/broadcast", lambda i: {"message": {"type": "seq", "i": i}}),
            ("/api/publish", lambda i: {"topic": "seq", "message": {"type": "seq", "i": i}}),
        ]
        for i in range(n):
            path, make = routes[i % len(routes)] if i >= n // 2 else routes[0]
            res = await self.api_ok("POST", path, make(i))
            self.assertIn(res.get("delivered"), (1, True), res)
        await asyncio.wait_for(task, 30)
        self.assertEqual([m["i"] for m in received], list(range(n)))
        await self.expect_silence(ws, 0.5)


class ApiNumericUserIdTest(RealtimeTestCase):
    """An integer user id is the same user as its decimal string, as in token claims."""

    async def test_integer_user_id_reaches_the_string_user(self):
        ws, _ = await self.connect(user_id="42")
        res = await self.api_ok("POST", "/api/send-to-user", {"user-id": 42, "message": {"type": "n"}})
        self.assertEqual(res, {"delivered": 1})
        self.assertEqual((await self.recv_json(ws))["type"], "n")
        self.assertEqual(await self.api_ok("POST", "/api/disconnect", {"user-id": 42}), {"disconnected": 1})

    async def test_other_non_string_user_ids_are_400(self):
        for bad in (4.5, True, "", None, [42]):
            with self.subTest(user_id=bad):
                status, data = await self.api("POST", "/api/send-to-user", {"user-id": bad, "message": {"type": "n"}})
                self.assertEqual(status, 400, data)
                self.assertEqual(data, {"error": "user-id must be a non-empty string or an integer"})


class MetricsTest(RealtimeTestCase):

    async def test_metrics_exposes_the_contract_names(self):
        text = await asyncio.to_thread(self.server.metrics_text)
        for name in ("realtime_connections", "realtime_connections_accepted_total",
                     "realtime_messages_received_total", "realtime_messages_sent_total",
                     "realtime_bytes_sent_total", "realtime_slow_consumer_disconnects_total",
                     "realtime_auth_failures_total", "realtime_protocol_errors_total"):
            with self.subTest(metric=name):
                self.assertRegex(text, rf"(?m)^{name}(\{{[^}}]*\}})? [0-9]", f"{name} missing")

    def test_metrics_needs_no_api_key(self):
        status, _ = self.server.get("/metrics")
        self.assertEqual(status, 200)

    async def test_connection_gauge_and_counter(self):
        total_before = await self.metric("realtime_connections_accepted_total")
        self.assertEqual(await self.metric("realtime_connections"), 0)
        a, _ = await self.connect(user_id="1")
        b, _ = await self.connect(user_id="2")
        await self.eventually(lambda: self.metric("realtime_connections"), lambda v: v == 2,
                              what="realtime_connections == 2")
        self.assertGreaterEqual(await self.metric("realtime_connections_accepted_total"), total_before + 2)
        await a.close()
        await self.eventually(lambda: self.metric("realtime_connections"), lambda v: v == 1,
                              what="realtime_connections == 1")
        self.assertGreaterEqual(await self.metric("realtime_connections_accepted_total"), total_before + 2)

    async def test_sent_messages_and_bytes_counted(self):
        ws, _ = await self.connect()
        sent_before = await self.metric("realtime_messages_sent_total")
        bytes_before = await self.metric("realtime_bytes_sent_total")
        for i in range(3):
            await self.api_ok("POST", "/api/broadcast", {"message": {"type": "x", "pad": "z" * 1000}})
            await self.recv_json(ws)
        await self.eventually(lambda: self.metric("realtime_messages_sent_total"),
                              lambda v: v >= sent_before + 3, what="messages_sent +3")
        await self.eventually(lambda: self.metric("realtime_bytes_sent_total"),
                              lambda v: v >= bytes_before + 3000, what="bytes_sent +3000")


if __name__ == "__main__":
    unittest.main()
