"""Token lifetime (docs/protocol.md, "Token lifetime"): a connection is closed with 4001 when its
token's exp passes, unless it sent `refresh` with a new token of the same user first.

Tokens live 2-3 s here. A token's exp is a whole second (int(now) + ttl), so its real lifetime
is between ttl - 1 and ttl seconds; the server closes within about a second of exp (its sweep
runs at least once a second)."""

import asyncio
import json
import time
import unittest

import websockets.exceptions

from rt_harness import RealtimeTestCase, b64url_decode, make_jwt, parse_timestamp, random_secret

# exp plus the sweep interval plus scheduling slack.
CLOSE_WITHIN = 2.5


class TokenLifetimeTest(RealtimeTestCase):

    def short_token(self, user_id="42", roles=None, ttl=3, **claims) -> tuple[str, int]:
        """A token that expires in `ttl` seconds, and its exp."""
        token = self.server.token(user_id, roles, ttl=ttl, **claims)
        return token, json.loads(b64url_decode(token.split(".")[1]))["exp"]

    async def wait_close(self, ws, timeout: float) -> tuple[int, str]:
        """(code, reason) of the server's close frame; fails if still open after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
            except websockets.exceptions.ConnectionClosed as exc:
                rcvd = exc.rcvd
                return (rcvd.code, rcvd.reason) if rcvd else (1006, "")
            except asyncio.TimeoutError:
                break
        self.fail(f"connection still open after {timeout}s")

    async def refresh(self, ws, token, ref="r") -> dict:
        return await self.command(ws, {"action": "refresh", "token": token, "ref": ref})

    def assert_forbidden(self, reply, ref="r"):
        self.assertEqual(reply.get("type"), "error", reply)
        self.assertEqual(reply.get("code"), "forbidden", reply)
        self.assertEqual(reply.get("ref"), ref, reply)
        self.assertTrue(reply.get("message"), reply)

    async def test_connection_closes_with_4001_when_exp_passes(self):
        token, exp = self.short_token(ttl=2)
        ws, _ = await self.connect(token=token)
        await self.assert_ping_works(ws)
        code, reason = await self.wait_close(ws, timeout=exp - time.time() + CLOSE_WITHIN)
        self.assertEqual((code, reason), (4001, "token expired"))
        self.assertGreaterEqual(time.time(), exp - 0.05, "closed before the token's exp")
        self.assertEqual(await self.metric("realtime_token_expired_disconnects_total"), 1)
        self.assertEqual(await self.metric("realtime_idle_disconnects_total"), 0)

    async def test_refresh_before_exp_keeps_the_connection_open(self):
        token, old_exp = self.short_token(ttl=2)
        ws, _ = await self.connect(token=token)
        fresh, new_exp = self.short_token(ttl=60)
        reply = await self.refresh(ws, fresh)
        self.assertEqual(reply.get("type"), "refreshed", reply)
        self.assertEqual(reply.get("ref"), "r", reply)
        expires_at = parse_timestamp(reply.get("expires-at"))
        self.assertEqual(expires_at.timestamp(), new_exp, reply)
        self.assertTrue(reply["expires-at"].endswith(".000Z"), reply)
        # Past the old exp and a sweep later, still open.
        await asyncio.sleep(max(0.0, old_exp - time.time()) + CLOSE_WITHIN)
        await self.assert_ping_works(ws, ref="after-old-exp")
        self.assertEqual(await self.metric("realtime_token_refreshes_total"), 1)
        self.assertEqual(await self.metric("realtime_token_expired_disconnects_total"), 0)

    async def test_refreshed_token_expires_in_turn(self):
        token, _ = self.short_token(ttl=2)
        ws, _ = await self.connect(token=token)
        fresh, new_exp = self.short_token(ttl=3)
        self.assertEqual((await self.refresh(ws, fresh)).get("type"), "refreshed")
        code, _ = await self.wait_close(ws, timeout=new_exp - time.time() + CLOSE_WITHIN)
        self.assertEqual(code, 4001)
        self.assertGreaterEqual(time.time(), new_exp - 0.05, "closed at the old exp, not the new one")

    async def test_refresh_with_another_users_token_is_forbidden_and_the_old_exp_stands(self):
        token, exp = self.short_token(user_id="alice", ttl=2)
        ws, _ = await self.connect(token=token)
        other, _ = self.short_token(user_id="mallory", ttl=60)
        reply = await self.refresh(ws, other)
        self.assert_forbidden(reply)
        self.assertIn("another user", reply["message"])
        code, _ = await self.wait_close(ws, timeout=exp - time.time() + CLOSE_WITHIN)
        self.assertEqual(code, 4001)
        self.assertEqual(await self.metric("realtime_token_refreshes_total"), 0)
        self.assertGreaterEqual(await self.metric("realtime_command_errors_total"), 1)

    async def test_refresh_with_a_bad_signature_is_forbidden(self):
        ws, _ = await self.connect(token=self.short_token(ttl=60)[0])
        forged = make_jwt({"user-id": "42", "exp": int(time.time()) + 600}, random_secret())
        reply = await self.refresh(ws, forged)
        self.assert_forbidden(reply)
        self.assertIn("bad signature", reply["message"])
        await self.assert_ping_works(ws)

    async def test_refresh_with_an_expired_or_malformed_token_is_forbidden(self):
        ws, _ = await self.connect(token=self.short_token(ttl=60)[0])
        expired = self.server.token("42", ttl=-10)
        self.assert_forbidden(await self.refresh(ws, expired))
        self.assert_forbidden(await self.refresh(ws, "not-a-jwt"))
        reply = await self.command(ws, {"action": "refresh", "ref": "r"})
        self.assertEqual((reply.get("type"), reply.get("code")), ("error", "bad-request"), reply)

    async def test_refreshed_roles_take_effect_for_send_to_role(self):
        ws, _ = await self.connect(token=self.short_token(roles=["old-role"], ttl=60)[0])
        fresh, _ = self.short_token(roles=["new-role"], ttl=60)
        self.assertEqual((await self.refresh(ws, fresh)).get("type"), "refreshed")
        res = await self.api_ok("POST", "/api/send-to-role", {"role": "old-role", "message": {"type": "old"}})
        self.assertEqual(res, {"delivered": 0})
        res = await self.api_ok("POST", "/api/send-to-role", {"role": "new-role", "message": {"type": "new"}})
        self.assertEqual(res, {"delivered": 1})
        self.assertEqual((await self.recv_json(ws)).get("type"), "new")
        # The role policy for topics follows too.
        reply = await self.command(ws, {"action": "subscribe", "topic": "role:new-role"})
        self.assertEqual(reply.get("type"), "subscribed", reply)
        reply = await self.command(ws, {"action": "subscribe", "topic": "role:old-role"})
        self.assertEqual(reply.get("code"), "forbidden", reply)

    async def test_refresh_keeps_subscriptions(self):
        ws, _ = await self.connect(token=self.short_token(ttl=60)[0])
        await self.command(ws, {"action": "subscribe", "topic": "order:1"})
        self.assertEqual((await self.refresh(ws, self.short_token(ttl=60)[0])).get("type"), "refreshed")
        res = await self.api_ok("POST", "/api/publish", {"topic": "order:1", "message": {"type": "t"}})
        self.assertEqual(res, {"delivered": 1})
        self.assertEqual((await self.recv_json(ws)).get("topic"), "order:1")

    async def test_token_without_exp_is_never_closed_for_expiry(self):
        no_exp = make_jwt({"user-id": "42"}, self.server.jwt_secret)
        ws, _ = await self.connect(token=no_exp)
        await asyncio.sleep(2.5)  # more than two sweeps
        await self.assert_ping_works(ws)
        # Refreshing to a token without exp answers expires-at null.
        reply = await self.refresh(ws, no_exp)
        self.assertEqual(reply.get("type"), "refreshed", reply)
        self.assertIn("expires-at", reply)
        self.assertIsNone(reply["expires-at"], reply)
        self.assertEqual(await self.metric("realtime_token_expired_disconnects_total"), 0)

    async def test_refresh_from_exp_to_no_exp_removes_the_expiry(self):
        token, exp = self.short_token(ttl=2)
        ws, _ = await self.connect(token=token)
        reply = await self.refresh(ws, make_jwt({"user-id": "42"}, self.server.jwt_secret))
        self.assertIsNone(reply.get("expires-at", "absent"), reply)
        await asyncio.sleep(max(0.0, exp - time.time()) + CLOSE_WITHIN)
        await self.assert_ping_works(ws)


if __name__ == "__main__":
    unittest.main()
