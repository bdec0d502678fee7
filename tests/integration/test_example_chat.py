"""The hooks example (examples/chat.cpp): each hook's effect seen by real clients of the real
process. The server's own answer to an unknown action without an on_action hook is tested with
realtime-server, not here."""
from __future__ import annotations

import asyncio
import json
import os
import time
import unittest
import urllib.parse

import websockets.exceptions

from rt_harness import DEFAULT_TIMEOUT, RealtimeTestCase, ServerProcess, http_request, parse_body

EXAMPLE = os.environ.get(
    "REALTIME_EXAMPLE_CHAT",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "release", "example_chat"))

BANNED = "666"


def upgrade_headers():
    return {"Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}


class ChatExampleTest(RealtimeTestCase):
    def setUp(self):
        if not os.path.exists(EXAMPLE):
            self.fail(f"example binary not found: {EXAMPLE} (set REALTIME_EXAMPLE_CHAT)")
        # Two loops, so that room messages cross loops. Same flags as realtime-server, plus --ban.
        srv = ServerProcess(extra_args=["--ban", f"13,{BANNED}"])
        srv.args[0] = EXAMPLE
        self.addCleanup(self._stop_server, srv, 0)
        self.server = srv.start()

    async def stats(self) -> dict:
        status, body = await self.api("GET", "/api/chat/stats")
        self.assertEqual(status, 200, body)
        return body

    async def subscribe(self, ws, topic: str) -> dict:
        return await self.command(ws, {"action": "subscribe", "topic": topic, "ref": topic})

    def assert_reply(self, reply: dict, type_: str, ref=None, **fields):
        """The reply's type, ref and the given fields (other fields, e.g. a timestamp, may be there)."""
        self.assertEqual(reply.get("type"), type_, reply)
        self.assertEqual(reply.get("ref"), ref, reply)
        for name, value in fields.items():
            self.assertEqual(reply.get(name), value, reply)

    async def assert_error(self, ws, command: dict, code: str):
        reply = await self.command(ws, command)
        self.assertEqual(reply.get("type"), "error", reply)
        self.assertEqual(reply.get("code"), code, reply)
        if "ref" in command:
            self.assertEqual(reply.get("ref"), command["ref"], reply)

    # -- on_connect

    def test_banned_user_is_refused_with_403_and_the_reason(self):
        path = "/ws?token=" + urllib.parse.quote(self.token(BANNED), safe="")
        status, _, data = http_request(self.port, "GET", path, headers=upgrade_headers())
        self.assertEqual(status, 403)
        self.assertEqual(parse_body(data), {"error": "banned"})

    async def test_banned_user_cannot_open_a_websocket_and_is_counted(self):
        for user in ("13", BANNED):
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as ctx:
                await self.connect(user)
            self.assertEqual(ctx.exception.status_code, 403)
        stats = await self.stats()
        self.assertEqual(stats["refused"], 2, stats)
        self.assertEqual(stats["online"], 0, stats)

    async def test_other_users_connect(self):
        ws, connected = await self.connect("7")
        self.assertEqual(connected["user-id"], "7")
        await self.assert_ping_works(ws)  # built-in actions still work next to the hook's

    # -- on_subscribe

    async def test_rooms_are_the_only_topics_clients_may_join(self):
        ws, _ = await self.connect("7")
        reply = await self.subscribe(ws, "room:lobby")
        self.assert_reply(reply, "subscribed", ref="room:lobby", topic="room:lobby")
        # Past the built-in rules (the user's own topic is allowed by them), refused by the hook.
        for topic in ("news:1", "user:7", "room:", "room:Lobby", "room:" + "x" * 33, "rooms:lobby"):
            with self.subTest(topic=topic):
                await self.assert_error(ws, {"action": "subscribe", "topic": topic, "ref": topic}, "forbidden")

    async def test_a_refused_subscription_receives_nothing(self):
        ws, _ = await self.connect("7")
        await self.assert_error(ws, {"action": "subscribe", "topic": "news:1"}, "forbidden")
        await self.api_ok("POST", "/api/publish", {"topic": "news:1", "message": {"type": "x"}})
        await self.assert_ping_works(ws, ref="after-publish")

    # -- on_action

    async def test_say_reaches_the_rooms_members_and_replies_said_ok_with_the_ref(self):
        alice, _ = await self.connect("1")
        bob, _ = await self.connect("2")
        carol, _ = await self.connect("3")
        for ws, room in ((alice, "room:lobby"), (bob, "room:lobby"), (carol, "room:kitchen")):
            self.assertEqual((await self.subscribe(ws, room))["type"], "subscribed")

        await alice.send(json.dumps({"action": "say", "room": "lobby", "text": "hello", "ref": "s1"}))
        # The sender is a member too: its copy and the confirmation, in either order.
        got = {}
        for _ in range(2):
            msg = await self.recv_json(alice)
            got[msg["type"]] = msg
        self.assertEqual(set(got), {"said", "said-ok"}, got)
        self.assert_reply(got["said-ok"], "said-ok", ref="s1")
        said = await self.recv_json(bob)
        self.assertEqual(said["type"], "said", said)
        self.assertEqual(said["room"], "lobby")
        self.assertEqual(said["from"], "user-1")  # on_connect's display name, from the token
        self.assertEqual(said["text"], "hello")
        self.assertEqual(said["topic"], "room:lobby")
        self.assertIn("timestamp", said)
        self.assertEqual(got["said"], said)
        # Another room's member got nothing: its next message is the ping reply.
        await self.assert_ping_works(carol, ref="quiet")

    async def test_say_from_a_non_member_still_reaches_the_room(self):
        alice, _ = await self.connect("1")
        bob, _ = await self.connect("2")
        await self.subscribe(bob, "room:lobby")
        reply = await self.command(alice, {"action": "say", "room": "lobby", "text": "knock knock", "ref": 5})
        self.assert_reply(reply, "said-ok", ref=5)
        said = await self.recv_json(bob)
        self.assertEqual((said["from"], said["text"]), ("user-1", "knock knock"))

    async def test_malformed_say_is_bad_request(self):
        ws, _ = await self.connect("7")
        for name, command in {
            "no-room": {"action": "say", "text": "hi", "ref": 1},
            "bad-room": {"action": "say", "room": "No Spaces", "text": "hi", "ref": 2},
            "no-text": {"action": "say", "room": "lobby", "ref": 3},
            "empty-text": {"action": "say", "room": "lobby", "text": "", "ref": 4},
            "text-not-string": {"action": "say", "room": "lobby", "text": 42, "ref": 5},
            "text-too-long": {"action": "say", "room": "lobby", "text": "x" * 1001, "ref": 6},
        }.items():
            with self.subTest(command=name):
                await self.assert_error(ws, command, "bad-request")

    async def test_echo_replies_the_payload(self):
        ws, _ = await self.connect("7")
        payload = {"nested": [1, "two", {"three": None}], "ok": True}
        reply = await self.command(ws, {"action": "echo", "payload": payload, "ref": "e"})
        self.assert_reply(reply, "echo", ref="e", payload=payload)
        reply = await self.command(ws, {"action": "echo"})
        self.assert_reply(reply, "echo", ref=None, payload=None)
        self.assertIn("payload", reply)

    async def test_an_action_the_hook_does_not_know_is_bad_request(self):
        ws, _ = await self.connect("7")
        await self.assert_error(ws, {"action": "dance", "ref": "d"}, "bad-request")
        await self.assert_ping_works(ws)

    # -- on_disconnect

    async def test_disconnects_are_counted(self):
        ws1, _ = await self.connect("7")
        ws2, _ = await self.connect("8")
        self.assertEqual((await self.stats())["online"], 2)
        await ws1.close()
        await ws2.close()
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        stats = await self.stats()
        while (stats["left"] < 2 or stats["online"] != 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            stats = await self.stats()
        self.assertEqual(stats["left"], 2, stats)
        self.assertEqual(stats["online"], 0, stats)

    async def test_stats_need_the_api_key(self):
        status, _ = await self.api("GET", "/api/chat/stats", key="wrong")
        self.assertEqual(status, 401)


if __name__ == "__main__":
    unittest.main()
