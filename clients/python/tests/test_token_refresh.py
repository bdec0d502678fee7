"""Token lifetime in boundary_realtime.RealtimeClient, against the real realtime-server: the
client refreshes its token ahead of exp with get_token, refresh_token() reports the server's
answer, and the pure helpers that decide when to refresh.

Run from the repository root:
    /usr/bin/python3 -m unittest discover -s clients/python/tests -v
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from boundary_realtime import RealtimeError, refresh_delay, token_expiry  # noqa: E402
from realtime_server import mint_token  # noqa: E402
from test_client import ClientTestCase, Recorder, within  # noqa: E402


def exp_of(token: str) -> int:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]


class TokenHelpersTest(unittest.TestCase):
    """When to refresh; no server needed."""

    def test_token_expiry_reads_exp_without_verifying(self):
        body = base64.urlsafe_b64encode(b'{"user-id":"x","exp":1700000000}').rstrip(b"=").decode()
        self.assertEqual(token_expiry(f"e30.{body}.not-a-signature"), 1700000000.0)
        no_exp = base64.urlsafe_b64encode(b'{"user-id":"x"}').rstrip(b"=").decode()
        self.assertIsNone(token_expiry(f"e30.{no_exp}.sig"))
        self.assertIsNone(token_expiry("not-a-jwt"))
        self.assertIsNone(token_expiry("a.!!!.c"))
        self.assertIsNone(token_expiry(None))

    def test_refresh_leads_exp_by_30_s_or_10_percent_whichever_is_smaller(self):
        self.assertEqual(refresh_delay(3600, 0, 0), 3570)   # long-lived: 30 s early
        self.assertEqual(refresh_delay(100, 0, 0), 90)      # short-lived: 10% early
        self.assertEqual(refresh_delay(100, 0, 50), 40)
        self.assertEqual(refresh_delay(10, 0, 20), 0)       # already past: at once


class TokenRefreshTest(ClientTestCase):

    async def test_get_token_refreshes_ahead_of_exp_and_the_connection_stays(self):
        issued = []

        async def get_token():
            roles = ("first",) if not issued else ("later",)
            token = await asyncio.to_thread(self.server.token, "42", roles, 3)
            issued.append(token)
            return token

        c = await self.connected_client(get_token=get_token, initial_delay=0.05)
        first_id = c.connection_id
        closes, refreshed, errors = Recorder(), Recorder(), Recorder()
        c.on("disconnected", closes)
        c.on("refreshed", refreshed)
        c.on("error", errors)
        first_exp = exp_of(issued[0])
        while time.time() < first_exp + 1.5:  # past exp and a server sweep
            await asyncio.sleep(0.1)
        self.assertEqual(closes.items, [], "no 4001 close")
        self.assertEqual(c.connection_id, first_id)
        self.assertGreaterEqual(len(issued), 2, "get_token was called for the refresh")
        self.assertGreaterEqual(len(refreshed.items), 1)
        expires_at = dt.datetime.strptime(refreshed.items[0]["expires-at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        self.assertEqual(expires_at.replace(tzinfo=dt.timezone.utc).timestamp(), exp_of(issued[1]))
        self.assertEqual(errors.items, [])
        # The server routes by the refreshed roles.
        self.assertEqual(await self.api("/api/send-to-role", {"role": "later", "message": {"type": "x"}}),
                         {"delivered": 1})
        self.assertEqual(await self.api("/api/send-to-role", {"role": "first", "message": {"type": "x"}}),
                         {"delivered": 0})
        self.assertEqual((await within(c.ping()))["type"], "pong")

    async def test_refresh_token_with_another_users_token_is_forbidden(self):
        c = await self.connected_client(token=self.server.token("42"))
        other = await asyncio.to_thread(self.server.token, "43")
        with self.assertRaises(RealtimeError) as caught:
            await within(c.refresh_token(other))
        self.assertEqual(caught.exception.code, "forbidden")
        self.assertIn("another user", str(caught.exception))
        fresh = await asyncio.to_thread(self.server.token, "42", (), 600)
        expires_at = await within(c.refresh_token(fresh))
        self.assertRegex(expires_at, r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$")
        self.assertEqual(c.state, "connected")

    async def test_refresh_token_with_a_bad_signature_is_forbidden(self):
        c = await self.connected_client(token=self.server.token("42"))
        forged = await asyncio.to_thread(mint_token, "another-secret-that-is-long-enough-0123456789", "42")
        with self.assertRaises(RealtimeError) as caught:
            await within(c.refresh_token(forged))
        self.assertEqual(caught.exception.code, "forbidden")
        self.assertEqual((await within(c.ping()))["type"], "pong")


if __name__ == "__main__":
    unittest.main()
