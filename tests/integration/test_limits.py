"""Protocol violations, limits, slow consumers and idle peers (docs/protocol.md), plus
cleanup after disconnects."""

import asyncio
import json
import struct
import time
import unittest

from rt_harness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RealtimeTestCase,
                        encode_frame, server_args)


def messages_from_frames(frames):
    """Reassemble data frames into (opcode, payload) messages; an unfinished one is dropped."""
    out, current, op = [], None, None
    for f in frames:
        if f.opcode in (OP_TEXT, OP_BINARY):
            current, op = bytearray(f.payload), f.opcode
        elif f.opcode == OP_CONT and current is not None:
            current += f.payload
        else:
            continue
        if f.fin:
            out.append((op, bytes(current)))
            current = None
    return out


class ProtocolViolationTest(RealtimeTestCase):
    SERVER_ARGS = ["--max-message-bytes", "1024"]

    async def open_raw(self):
        r = self.raw()
        hello = r.recv_json()
        self.assertEqual(hello["type"], "connected")
        return r

    async def assert_closed_with(self, raw, code, timeout=5.0):
        res = await asyncio.to_thread(raw.read_until_end, timeout)
        self.assertFalse(res["timed_out"], f"connection still open {timeout}s after the violation")
        self.assertTrue(res["close_frame"], f"TCP ended without a close frame (expected {code}): {res}")
        self.assertEqual(res["close_code"], code, res)

    async def violation_case(self, bystander, data: bytes, code: int):
        raw = await self.open_raw()
        raw.send_raw(data)
        await self.assert_closed_with(raw, code)
        raw.close()
        await self.assert_ping_works(bystander)

    async def test_binary_frame_closes_1003(self):
        bystander, _ = await self.connect(user_id="bystander")
        ws, _ = await self.connect()
        await ws.send(b"\x00\x01binary")
        self.assertEqual(await self.wait_closed_code(ws), 1003)
        await self.violation_case(bystander, encode_frame(OP_BINARY, b'{"action":"ping"}'), 1003)

    async def test_oversized_message_closes_1009(self):
        bystander, _ = await self.connect(user_id="bystander")
        ws, _ = await self.connect()
        await ws.send(json.dumps({"action": "ping", "ref": "x" * 2000}))
        self.assertEqual(await self.wait_closed_code(ws), 1009)
        await self.assert_ping_works(bystander)

    async def test_oversized_fragmented_message_closes_1009(self):
        bystander, _ = await self.connect(user_id="bystander")
        half = b"x" * 700
        await self.violation_case(
            bystander,
            encode_frame(OP_TEXT, b'{"action":"ping","ref":"' + half, fin=False)
            + encode_frame(OP_CONT, half + b'"}', fin=True),
            1009)

    async def test_huge_announced_length_closes_1009_without_waiting_for_payload(self):
        bystander, _ = await self.connect(user_id="bystander")
        await self.violation_case(bystander, encode_frame(OP_TEXT, b"", length_override=1 << 40), 1009)

    async def test_message_at_the_limit_is_accepted(self):
        ws, _ = await self.connect()
        base = len(json.dumps({"action": "ping", "ref": ""}).encode())
        ref = "r" * (1024 - base)
        payload = json.dumps({"action": "ping", "ref": ref})
        self.assertEqual(len(payload.encode()), 1024)
        reply = await self.command(ws, payload)
        self.assertEqual(reply["type"], "pong", reply)
        self.assertEqual(reply["ref"], ref)

    async def test_invalid_utf8_closes_1007(self):
        bystander, _ = await self.connect(user_id="bystander")
        for name, payload in (("0xff", b'{"action":"ping","ref":"\xff"}'),
                              ("overlong", b'{"action":"ping","ref":"\xc0\xaf"}'),
                              ("surrogate", b'{"action":"ping","ref":"\xed\xa0\x80"}'),
                              ("truncated-at-end", b'{"action":"ping"}\xe2\x82')):
            with self.subTest(case=name):
                await self.violation_case(bystander, encode_frame(OP_TEXT, payload), 1007)

    async def test_framing_errors_close_1002(self):
        bystander, _ = await self.connect(user_id="bystander")
        ping = b'{"action":"ping"}'
        cases = {
            "unmasked": encode_frame(OP_TEXT, ping, mask=False),
            "rsv1": encode_frame(OP_TEXT, ping, rsv=4),
            "rsv2": encode_frame(OP_TEXT, ping, rsv=2),
            "rsv3": encode_frame(OP_TEXT, ping, rsv=1),
            "reserved-data-opcode-3": encode_frame(0x3, ping),
            "reserved-control-opcode-b": encode_frame(0xB, b""),
            "control-payload-126": encode_frame(OP_PING, b"p" * 126),
            "fragmented-control": encode_frame(OP_PING, b"p", fin=False),
            "continuation-without-start": encode_frame(OP_CONT, ping),
            "new-text-inside-fragmented": encode_frame(OP_TEXT, b'{"action":', fin=False)
            + encode_frame(OP_TEXT, ping),
        }
        for name, data in cases.items():
            with self.subTest(case=name):
                await self.violation_case(bystander, data, 1002)

    async def test_protocol_errors_counted_in_metrics(self):
        bystander, _ = await self.connect(user_id="bystander")
        before = await self.metric("realtime_protocol_errors_total")
        self.assertIsNotNone(before, "realtime_protocol_errors_total missing")
        await self.violation_case(bystander, encode_frame(OP_TEXT, b"{}", mask=False), 1002)
        await self.eventually(lambda: self.metric("realtime_protocol_errors_total"),
                              lambda v: v >= before + 1, what="protocol errors counted")

    async def test_fragmented_message_with_split_utf8_and_interleaved_ping_is_accepted(self):
        raw = await self.open_raw()
        raw.send_raw(encode_frame(OP_TEXT, b'{"action":"pi', fin=False)
                     + encode_frame(OP_PING, b"mid")
                     + encode_frame(OP_CONT, b'ng","ref":"\xc3', fin=False)
                     + encode_frame(OP_CONT, b'\xa9"}', fin=True))
        got_pong, reply = False, None
        deadline = time.monotonic() + 5
        while reply is None:
            f = await asyncio.to_thread(raw.recv_frame, max(0.01, deadline - time.monotonic()))
            if f.opcode == OP_PONG:
                self.assertEqual(f.payload, b"mid")
                got_pong = True
            elif f.opcode == OP_TEXT:
                reply = json.loads(f.payload.decode())
            elif f.opcode != OP_PING:
                self.fail(f"unexpected frame {f!r} {f.payload!r}")
        self.assertEqual(reply, {**reply, "type": "pong", "ref": "\u00e9"})
        if not got_pong:  # the pong may come after the reply
            f = await asyncio.to_thread(raw.recv_frame, 5)
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"mid"))

    async def test_client_ping_frame_answered_with_pong(self):
        raw = await self.open_raw()
        raw.send_frame(OP_PING, b"hello")
        f = await asyncio.to_thread(raw.recv_frame, 5)
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"hello"))

    async def test_client_close_is_answered(self):
        raw = await self.open_raw()
        raw.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
        res = await asyncio.to_thread(raw.read_until_end, 5)
        self.assertTrue(res["close_frame"], res)
        self.assertEqual(res["close_code"], 1000, res)


class DefaultInboundLimitTest(RealtimeTestCase):

    async def test_default_limit_is_64_kib(self):
        ws, _ = await self.connect()
        base = len(json.dumps({"action": "ping", "ref": ""}).encode())
        ref = "r" * (65536 - base)
        reply = await self.command(ws, json.dumps({"action": "ping", "ref": ref}))
        self.assertEqual((reply["type"], reply["ref"]), ("pong", ref))
        await ws.send(json.dumps({"action": "ping", "ref": ref + "r"}))
        self.assertEqual(await self.wait_closed_code(ws), 1009)


class SlowConsumerTest(RealtimeTestCase):
    SERVER_ARGS = ["--max-outbound-bytes", "65536"]

    @server_args("--max-outbound-bytes", "33554432")
    async def test_a_client_that_stops_reading_gets_everything_once_it_reads_again(self):
        # 12 MB queued for a client that reads nothing: more than the kernel's send buffer (at
        # most 4 MiB here) and the client's 4 KiB receive buffer hold, so the server must wait
        # for writability and resume; within --max-outbound-bytes, so nothing may be dropped.
        paused = self.raw(token=self.token("paused"), rcvbuf=4096)
        self.assertEqual(paused.recv_json()["type"], "connected")
        pad, count = "x" * 60000, 200
        for i in range(count):
            res = await self.api_ok("POST", "/api/broadcast", {"message": {"type": "bulk", "seq": i, "pad": pad}})
            self.assertEqual(res["delivered"], 1, res)

        def read_all():
            return [paused.recv_json(timeout=20)["seq"] for _ in range(count)]

        self.assertEqual(await asyncio.to_thread(read_all), list(range(count)))
        self.assertEqual(await self.metric("realtime_slow_consumer_disconnects_total"), 0)
        paused.sock.close()

    async def test_slow_consumer_closed_while_fast_client_gets_everything(self):
        fast, _ = await self.connect(user_id="fast")
        slow = self.raw(token=self.token("slow"), rcvbuf=4096)
        self.assertEqual(slow.recv_json()["type"], "connected")
        slow_before = await self.metric("realtime_slow_consumer_disconnects_total")
        self.assertIsNotNone(slow_before, "realtime_slow_consumer_disconnects_total missing")

        received = []

        async def consume():
            while True:
                msg = await self.recv_json(fast, timeout=60)
                received.append(msg["seq"])

        consumer = asyncio.create_task(consume())
        try:
            pad = "x" * 4096
            sent, dropped_at, limit = 0, None, 4000
            for i in range(limit):
                res = await self.api_ok("POST", "/api/broadcast",
                                        {"message": {"type": "bulk", "seq": i, "pad": pad}})
                sent += 1
                if i == 0:
                    self.assertEqual(res["delivered"], 2, res)
                if dropped_at is None and res["delivered"] < 2:
                    dropped_at = i
                if dropped_at is not None and i >= dropped_at + 20:
                    break
                self.assertFalse(consumer.done(), "fast client stopped receiving")
            self.assertIsNotNone(
                dropped_at, f"the non-reading client was still counted as delivered after {limit} x 4 KiB")

            # the slow client now reads whatever the server still has for it
            res = await asyncio.to_thread(slow.read_until_end, 20)
            self.assertFalse(res["timed_out"], "slow consumer still connected")
            if res["close_frame"]:
                self.assertEqual(res["close_code"], 1008, res)
            seqs = [json.loads(p)["seq"] for op, p in messages_from_frames(res["frames"]) if op == OP_TEXT]
            self.assertEqual(seqs, list(range(len(seqs))),
                             "the slow consumer saw gaps or reordering before being closed")
            self.assertLess(len(seqs), sent)
            print(f"\n[slow-consumer] sent {sent}, dropped from delivery at #{dropped_at}, "
                  f"slow client read {len(seqs)} messages then "
                  f"{'close ' + str(res['close_code']) if res['close_frame'] else 'EOF'}", flush=True)

            await self.eventually(lambda: self.metric("realtime_slow_consumer_disconnects_total"),
                                  lambda v: v >= slow_before + 1, what="slow consumer disconnect counted")

            deadline = time.monotonic() + 60
            while len(received) < sent and time.monotonic() < deadline and not consumer.done():
                await asyncio.sleep(0.05)
            self.assertEqual(len(received), sent, "fast client did not get every message")
            self.assertEqual(received, list(range(sent)), "fast client got messages out of order")
            self.assertTrue(fast.open)
        finally:
            consumer.cancel()
            try:
                await consumer
            except (asyncio.CancelledError, Exception):
                pass
        await self.assert_ping_works(fast)
        connections = await self.api_ok("GET", "/api/connections")
        self.assertEqual(connections["count"], 1)


class IdleTest(RealtimeTestCase):
    SERVER_ARGS = ["--idle-timeout", "2"]

    async def test_silent_peer_pinged_then_closed_polite_peer_stays(self):
        polite, _ = await self.connect(user_id="polite")
        silent = self.raw(token=self.token("silent"))
        self.assertEqual(silent.recv_json()["type"], "connected")
        silent_task = asyncio.create_task(asyncio.to_thread(silent.read_until_end, 8))
        await asyncio.sleep(5)
        self.assertTrue(polite.open, "a client answering pings was closed as idle")
        await self.assert_ping_works(polite)
        res = await silent_task
        self.assertGreaterEqual(res["pings"], 1, f"server never pinged the idle peer: {res}")
        self.assertFalse(res["timed_out"], "silent peer still connected after 8 s (idle timeout 2 s)")
        self.assertLess(res["elapsed"], 6.0, res)
        if res["close_frame"]:
            self.assertIn(res["close_code"], (1000, 1001, 1008), res)
        await self.eventually(lambda: self.api_ok("GET", "/api/connections"), lambda r: r["count"] == 1,
                              what="idle connection removed")

    async def test_peer_sending_commands_is_not_idle(self):
        raw = self.raw()
        self.assertEqual(raw.recv_json()["type"], "connected")

        def chatty():
            end = time.monotonic() + 5
            n = 0
            while time.monotonic() < end:
                raw.send_json({"action": "ping", "ref": n})
                reply = raw.recv_json(timeout=2)  # skips (does not answer) server pings
                assert reply == {**reply, "type": "pong", "ref": n}, reply
                n += 1
                time.sleep(0.4)
            return n

        n = await asyncio.to_thread(chatty)
        self.assertGreater(n, 5)


class DisconnectCleanupTest(RealtimeTestCase):

    async def publish_count(self, topic):
        return (await self.api_ok("POST", "/api/publish", {"topic": topic, "message": {"type": "x"}}))["delivered"]

    async def test_closed_client_leaves_its_topics(self):
        ws, _ = await self.connect()
        await self.command(ws, {"action": "subscribe", "topic": "cleanup:1"})
        await self.command(ws, {"action": "subscribe", "topic": "cleanup:2"})
        self.assertEqual(await self.publish_count("cleanup:1"), 1)
        await self.recv_json(ws)
        await ws.close()
        await self.eventually(lambda: self.publish_count("cleanup:1"), lambda n: n == 0, what="topic left")
        self.assertEqual(await self.publish_count("cleanup:2"), 0)

    async def test_abruptly_vanished_client_leaves_its_topics(self):
        raw = self.raw()
        raw.recv_json()
        raw.send_json({"action": "subscribe", "topic": "cleanup:abrupt"})
        self.assertEqual(raw.recv_json()["type"], "subscribed")
        raw.sock.close()  # no close frame
        await self.eventually(lambda: self.publish_count("cleanup:abrupt"), lambda n: n == 0, what="topic left")
        await self.eventually(lambda: self.api_ok("GET", "/api/connections"), lambda r: r["count"] == 0,
                              what="connection removed")

    async def test_client_vanishing_mid_frame_does_not_disturb_others(self):
        other, _ = await self.connect(user_id="other")
        await self.command(other, {"action": "subscribe", "topic": "room:1"})
        for cut in (1, 2, 6, 20):
            raw = self.raw()
            raw.recv_json()
            frame = encode_frame(OP_TEXT, json.dumps({"action": "ping", "ref": "z" * 200}).encode())
            raw.send_raw(frame[:cut])
            raw.sock.close()
        await self.assert_ping_works(other)
        self.assertEqual(await self.publish_count("room:1"), 1)
        await self.recv_json(other)
        await self.eventually(lambda: self.api_ok("GET", "/api/connections"), lambda r: r["count"] == 1,
                              what="half-frame connections removed")
        status, health = self.server.health()
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
