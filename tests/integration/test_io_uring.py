"""--io-uring on: each loop pass's writes go through io_uring, one system call for many
connections, instead of one writev per connection. The tests check that the server really holds
a ring, that fan-out reaches every client complete and in order, that a client which stops
reading gets everything once it reads again (sends that would block), and run existing suites
again with the flag: slow consumers, protocol errors and closes, compression, TLS (whose
connections keep their own write path)."""

from __future__ import annotations

import asyncio
import json
import os
import unittest

import test_compression
import test_limits
import test_tls
from rt_harness import RealtimeTestCase, server_args

URING = ["--io-uring", "on"]


def io_uring_fds(pid: int) -> int:
    """How many io_uring instances the process holds open."""
    fd_dir = f"/proc/{pid}/fd"
    count = 0
    for name in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, name)) == "anon_inode:[io_uring]":
                count += 1
        except FileNotFoundError:
            pass
    return count


class IoUringTest(RealtimeTestCase):
    SERVER_ARGS = [*URING, "--publish-patterns", "room:*", "--commands-per-second", "0"]  # two loops

    async def test_each_loop_holds_a_ring_and_the_log_says_so(self):
        self.assertEqual(io_uring_fds(self.server.proc.pid), 2)
        self.assertIn("writes through io_uring", self.server.log())

    @server_args("--io-uring", "off")
    async def test_no_ring_without_the_flag(self):
        self.assertEqual(io_uring_fds(self.server.proc.pid), 0)
        self.assertNotIn("io_uring", self.server.log())

    async def test_fanout_reaches_every_client_complete_and_in_order(self):
        clients = []
        for i in range(40):
            ws, _ = await self.connect(user_id=f"u{i}")
            reply = await self.command(ws, {"action": "subscribe", "topic": "room:1"})
            self.assertEqual(reply["type"], "subscribed", reply)
            clients.append(ws)
        publisher, _ = await self.connect(user_id="pub")
        count = 300
        # WebSocket publishes, not awaited one by one: many messages are queued per pass.
        for seq in range(count):
            await publisher.send(json.dumps({"action": "publish", "topic": "room:1",
                                             "message": {"type": "n", "seq": seq}}))

        async def collect(ws):
            seqs = []
            while len(seqs) < count:
                msg = await self.recv_json(ws, timeout=10)  # before the idle ping (30 s) could flush a stuck queue
                if msg.get("type") == "n":
                    seqs.append(msg["seq"])
            return seqs

        results = await asyncio.gather(*(collect(ws) for ws in clients))
        for i, seqs in enumerate(results):
            self.assertEqual(seqs, list(range(count)), f"client {i}")

    @server_args("--max-outbound-bytes", str(32 * 1024 * 1024))
    async def test_a_client_that_stops_reading_gets_everything_when_it_reads_again(self):
        # A small receive buffer and a paused reader: the socket fills, the ring's sends come
        # back partial (or refused), and the rest must go once the client reads again.
        raw = self.raw(token=self.token("paused"), rcvbuf=4096)
        self.assertEqual(raw.recv_json()["type"], "connected")
        pad = "x" * 16384
        count = 800  # about 13 MB: more than the socket buffers hold (the send buffer grows to 4 MiB)

        def send_all():
            for seq in range(count):
                status, res = self.server.api_sync("POST", "/api/broadcast",
                                                   {"message": {"type": "bulk", "seq": seq, "pad": pad}})
                self.assertEqual((status, res["delivered"]), (200, 1), res)

        await asyncio.to_thread(send_all)
        seqs = []
        while len(seqs) < count:
            msg = await asyncio.to_thread(raw.recv_json, 10)  # well before the idle ping (30 s) would flush a stuck queue
            self.assertEqual(msg["type"], "bulk", msg)
            seqs.append(msg["seq"])
        self.assertEqual(seqs, list(range(count)))


# The same suites again with the flag. Their own modules run them without it.

class IoUringSlowConsumerTest(test_limits.SlowConsumerTest):
    SERVER_ARGS = [*test_limits.SlowConsumerTest.SERVER_ARGS, *URING]


class IoUringProtocolViolationTest(test_limits.ProtocolViolationTest):
    SERVER_ARGS = [*test_limits.ProtocolViolationTest.SERVER_ARGS, *URING]


class IoUringCompressionTest(test_compression.CompressionTest):
    SERVER_ARGS = [*test_compression.CompressionTest.SERVER_ARGS, *URING]


class IoUringTlsServing(test_tls.TlsServing):
    def start_tls(self, *args, env=None):
        return super().start_tls(*args, *URING, env=env)


if __name__ == "__main__":
    unittest.main()
