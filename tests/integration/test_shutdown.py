"""Graceful shutdown on SIGTERM / SIGINT (docs/protocol.md, "Graceful shutdown")."""

import asyncio
import json
import signal
import time
import unittest

from rt_harness import OP_TEXT, RealtimeTestCase

SHUTDOWN_TEXT = "Server shutting down gracefully"


class ShutdownTest(RealtimeTestCase):

    async def wait_exit(self, t0, within):
        rc = await asyncio.to_thread(self.server.wait, max(0.1, t0 + within - time.monotonic()))
        self.assertIsNotNone(rc, f"server still running {within}s after the signal")
        self.assertEqual(rc, 0, "graceful shutdown must exit with status 0")
        return rc

    def assert_shutdown_message(self, msg):
        self.assertEqual(msg.get("type"), "server-shutdown", msg)
        self.assertEqual(msg.get("message"), SHUTDOWN_TEXT, msg)
        self.assert_timestamp(msg.get("timestamp"))

    async def signal_with_clients(self, sig):
        a, _ = await self.connect(user_id="1")
        b, _ = await self.connect(user_id="2", roles=["admin"])
        await self.command(a, {"action": "subscribe", "topic": "news"})
        t0 = time.monotonic()
        self.server.signal(sig)
        for ws in (a, b):
            self.assert_shutdown_message(await self.recv_json(ws))
            code = await self.wait_closed_code(ws)
            self.assertEqual(code, 1001, "close code after server-shutdown")
        await self.wait_exit(t0, 5)

    async def test_sigterm_notifies_every_client_closes_1001_and_exits_0(self):
        await self.signal_with_clients(signal.SIGTERM)

    async def test_sigint_is_graceful_too(self):
        await self.signal_with_clients(signal.SIGINT)

    async def test_sigterm_without_clients_exits_0(self):
        t0 = time.monotonic()
        self.server.signal(signal.SIGTERM)
        await self.wait_exit(t0, 5)

    async def test_raw_client_sees_shutdown_message_then_close_1001(self):
        raw = self.raw()
        self.assertEqual(raw.recv_json()["type"], "connected")
        t0 = time.monotonic()
        self.server.signal(signal.SIGTERM)
        # the raw client never answers the close frame; the server must exit anyway
        res = await asyncio.to_thread(raw.read_until_end, 10)
        texts = [f for f in res["frames"] if f.opcode == OP_TEXT]
        self.assertEqual(len(texts), 1, res)
        self.assert_shutdown_message(json.loads(texts[0].payload))
        self.assertTrue(res["close_frame"], res)
        self.assertEqual(res["close_code"], 1001, res)
        await self.wait_exit(t0, 10)

    async def test_shutdown_with_a_client_that_does_not_read(self):
        reader, _ = await self.connect(user_id="reader")
        stuck = self.raw(token=self.token("stuck"), rcvbuf=4096)
        self.assertEqual(stuck.recv_json()["type"], "connected")
        for i in range(100):  # ~400 KiB, under the default outbound limit
            await self.api_ok("POST", "/api/broadcast", {"message": {"type": "bulk", "i": i, "pad": "x" * 4096}})
        t0 = time.monotonic()
        self.server.signal(signal.SIGTERM)
        await self.wait_exit(t0, 10)


if __name__ == "__main__":
    unittest.main()
