"""permessage-deflate (RFC 7692, --compression on): negotiation at the upgrade, one compressed
frame shared by every recipient that negotiated it, compressed client messages inflated within
--max-message-bytes (a compression bomb is closed with 1009), client context takeover, and
--compression off negotiating nothing. Clients: a raw client that inflates with Python's zlib,
Python `websockets` (it offers permessage-deflate by default) and Node `ws`
(tests/integration/node/ws_deflate.mjs)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import zlib

from rt_harness import (HERE, HOST, OP_CONT, OP_PING, OP_TEXT, SERVER, RawWS, RealtimeTestCase, no_server,
                        random_secret, server_args)

NODE_DIR = os.path.join(HERE, "node")
OFFER = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
TAIL = b"\x00\x00\xff\xff"

# A typical JSON message: repetitive keys, as most application messages are.
ORDER = {"type": "order", "id": "ord_8f3a2c", "status": "shipped", "items": [
    {"sku": f"SKU-{i:04d}", "name": "Blue widget", "quantity": i, "price": "19.99"} for i in range(8)]}


def inflate(payload: bytes) -> bytes:
    d = zlib.decompressobj(-15)
    return d.decompress(payload + TAIL) + d.flush()


def deflate(data: bytes, c=None) -> bytes:
    """One message compressed as RFC 7692 asks (sync flush, tail removed); `c` keeps the
    context (client context takeover)."""
    c = c or zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def peak_rss(pid: int) -> int:
    """VmHWM of a process, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def extensions_of(raw) -> str | None:
    m = re.search(r"(?im)^sec-websocket-extensions:\s*(.*?)\s*$", raw.response_head)
    return m.group(1) if m else None


def next_data_frame(raw):
    while True:
        f = raw.recv_frame()
        if f.opcode != OP_PING:
            return f


def app(msg: dict) -> dict:
    """A delivered message without what the server adds to it (timestamp, topic)."""
    return {k: v for k, v in msg.items() if k not in ("timestamp", "topic")}


def message_json(frame) -> dict:
    """The JSON of a text frame, inflated when RSV1 is set."""
    assert frame.opcode == OP_TEXT and frame.fin, frame
    data = inflate(frame.payload) if frame.rsv & 0x4 else frame.payload
    return json.loads(data)


class CompressionTest(RealtimeTestCase):
    SERVER_ARGS = ["--compression", "on", "--publish-patterns", "chat:*"]

    def raw_subscriber(self, topic: str, offer: str | None):
        raw = self.raw(headers={"Sec-WebSocket-Extensions": offer} if offer else None)
        connected = message_json(next_data_frame(raw))
        self.assertEqual(connected["type"], "connected")
        raw.send_json({"action": "subscribe", "topic": topic})
        self.assertEqual(message_json(next_data_frame(raw))["type"], "subscribed")
        return raw

    async def test_answer_always_has_server_no_context_takeover(self):
        raw = self.raw(headers=OFFER)
        self.assertEqual(extensions_of(raw), "permessage-deflate; server_no_context_takeover")

    async def test_fanout_frame_is_compressed_once_and_shared(self):
        a = self.raw_subscriber("orders", OFFER["Sec-WebSocket-Extensions"])
        b = self.raw_subscriber("orders", "permessage-deflate")
        self.assertEqual((await self.api_ok("POST", "/api/publish", {"topic": "orders", "message": ORDER}))["delivered"], 2)
        fa, fb = next_data_frame(a), next_data_frame(b)
        self.assertEqual(fa.rsv, 0x4, "RSV1 must mark the compressed frame")
        self.assertEqual(fa.payload, fb.payload, "every compressing recipient gets the same bytes")
        self.assertLess(len(fa.payload), len(json.dumps(ORDER)) // 2)
        self.assertEqual(app(message_json(fa)), ORDER)

    async def test_mixed_subscribers_get_identical_messages(self):
        deflating = [self.raw_subscriber("orders", "permessage-deflate") for _ in range(2)]
        plain = [self.raw_subscriber("orders", None) for _ in range(2)]
        ws, _ = await self.connect()  # python websockets: negotiates it by default
        self.assertEqual((await self.command(ws, {"action": "subscribe", "topic": "orders"}))["type"], "subscribed")
        self.assertEqual(ws.response_headers.get("Sec-WebSocket-Extensions"),
                         "permessage-deflate; server_no_context_takeover")
        for i in range(3):
            msg = dict(ORDER, id=f"ord_{i}")
            self.assertEqual((await self.api_ok("POST", "/api/publish", {"topic": "orders", "message": msg}))["delivered"], 5)
            frames = [next_data_frame(r) for r in deflating + plain]
            self.assertEqual([f.rsv for f in frames], [4, 4, 0, 0])
            self.assertEqual(frames[0].payload, frames[1].payload)
            self.assertEqual(frames[2].payload, frames[3].payload)
            self.assertEqual(frames[2].payload, inflate(frames[0].payload))
            for f in frames:
                self.assertEqual(app(message_json(f)), msg)
            self.assertEqual(await self.recv_json(ws), message_json(frames[2]))

    async def test_small_message_goes_uncompressed(self):
        raw = self.raw_subscriber("o", "permessage-deflate")
        await self.api_ok("POST", "/api/publish", {"topic": "o", "message": {"type": "t"}})
        f = next_data_frame(raw)
        self.assertLess(len(f.payload), 64)  # the threshold (docs/protocol.md)
        self.assertEqual(f.rsv, 0)
        self.assertEqual(app(json.loads(f.payload)), {"type": "t"})

    async def test_compressed_client_message_is_handled(self):
        sub = self.raw_subscriber("chat:room", None)
        raw = self.raw(headers=OFFER)
        self.assertIsNotNone(extensions_of(raw))
        message_json(next_data_frame(raw))  # connected
        command = json.dumps({"action": "publish", "topic": "chat:room", "message": ORDER}).encode()
        raw.send_frame(OP_TEXT, deflate(command), rsv=0x4)
        self.assertEqual(message_json(next_data_frame(raw))["type"], "published")
        self.assertEqual(app(message_json(next_data_frame(sub))), ORDER)

    async def test_fragmented_compressed_message(self):
        raw = self.raw(headers=OFFER)
        message_json(next_data_frame(raw))
        data = deflate(json.dumps({"action": "ping", "ref": "x" * 200}).encode())
        raw.send_frame(OP_TEXT, data[:5], rsv=0x4, fin=False)
        raw.send_frame(OP_CONT, data[5:])
        self.assertEqual(message_json(next_data_frame(raw)), {"type": "pong", "ref": "x" * 200})

    async def test_client_context_takeover(self):
        raw = self.raw(headers=OFFER)
        message_json(next_data_frame(raw))
        c = zlib.compressobj(wbits=-15)
        first = json.dumps({"action": "ping", "ref": "the same long reference " * 8}).encode()
        raw.send_frame(OP_TEXT, deflate(first, c), rsv=0x4)
        self.assertEqual(message_json(next_data_frame(raw))["type"], "pong")
        second = deflate(first, c)  # back-references into the first message
        self.assertLess(len(second), 20)
        raw.send_frame(OP_TEXT, second, rsv=0x4)
        self.assertEqual(message_json(next_data_frame(raw)), {"type": "pong", "ref": "the same long reference " * 8})
        # Its own inflate stream (state and window) is counted while the connection lives.
        self.assertGreater(await self.metric("realtime_inflate_memory_bytes"), 32 * 1024)
        self.assertEqual(await self.metric("realtime_compressed_connections"), 1)

    @no_server
    async def test_client_no_context_takeover_is_echoed_and_shares_the_loop_stream(self):
        self.server = self.start_server(self.SERVER_ARGS, threads=1)
        raw = self.raw(headers={"Sec-WebSocket-Extensions": "permessage-deflate; client_no_context_takeover"})
        self.assertEqual(extensions_of(raw),
                         "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        message_json(next_data_frame(raw))
        before = await self.metric("realtime_inflate_memory_bytes")
        for i in range(3):
            raw.send_frame(OP_TEXT, deflate(json.dumps({"action": "ping", "ref": "r" * 100 + str(i)}).encode()), rsv=0x4)
            self.assertEqual(message_json(next_data_frame(raw))["ref"], "r" * 100 + str(i))
        shared = await self.metric("realtime_inflate_memory_bytes")
        self.assertEqual(before, 0)
        self.assertGreater(shared, 0)
        # No stream of its own: another such connection on the loop (--threads 1) adds nothing.
        other = self.raw(headers={"Sec-WebSocket-Extensions": "permessage-deflate; client_no_context_takeover"})
        message_json(next_data_frame(other))
        other.send_frame(OP_TEXT, deflate(json.dumps({"action": "ping", "ref": "q" * 100}).encode()), rsv=0x4)
        self.assertEqual(message_json(next_data_frame(other))["ref"], "q" * 100)
        self.assertEqual(await self.metric("realtime_inflate_memory_bytes"), shared)

    async def test_server_max_window_bits_is_honoured(self):
        raw = self.raw_subscriber("orders", "permessage-deflate; server_max_window_bits=9")
        self.assertEqual(extensions_of(raw), "permessage-deflate; server_no_context_takeover; server_max_window_bits=9")
        small = {"type": "t", "text": "abc " * 40}   # under 512 bytes: compressed
        large = {"type": "t", "text": "abcd " * 200}  # over 512 bytes: plain, no distance past the window
        await self.api_ok("POST", "/api/publish", {"topic": "orders", "message": small})
        await self.api_ok("POST", "/api/publish", {"topic": "orders", "message": large})
        f1, f2 = next_data_frame(raw), next_data_frame(raw)
        self.assertEqual((f1.rsv, f2.rsv), (4, 0))
        d = zlib.decompressobj(-9)
        self.assertEqual(app(json.loads(d.decompress(f1.payload + TAIL))), small)
        self.assertEqual(app(json.loads(f2.payload)), large)

    async def test_unusable_offers_are_declined_and_the_next_one_taken(self):
        cases = {
            "permessage-deflate; server_max_window_bits=16": None,
            "permessage-deflate; server_max_window_bits": None,
            "permessage-deflate; server_max_window_bits=010": None,
            "permessage-deflate; client_max_window_bits=7": None,
            "permessage-deflate; mystery": None,
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover": None,
            "permessage-deflate; server_no_context_takeover=1": None,
            "x-webkit-deflate-frame": None,
            "permessage-deflate; mystery, permessage-deflate; client_max_window_bits=10":
                "permessage-deflate; server_no_context_takeover",
            'permessage-deflate; server_max_window_bits="12"':
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
            "permessage-deflate; server_no_context_takeover": "permessage-deflate; server_no_context_takeover",
            "permessage-deflate;;": None,
        }
        for offer, expected in cases.items():
            with self.subTest(offer=offer):
                raw = self.raw(headers={"Sec-WebSocket-Extensions": offer})
                self.assertEqual(extensions_of(raw), expected)
                f = next_data_frame(raw)
                self.assertEqual(f.rsv, 0)
                raw.close()

    @server_args("--max-message-bytes", "65536")
    async def test_compression_bomb_is_closed_with_1009(self):
        raw = self.raw(headers=OFFER)
        message_json(next_data_frame(raw))
        bomb = deflate(b'{"action":"ping","ref":"' + b"A" * (32 * 1024 * 1024) + b'"}')
        # Under the limit on the wire, so the 1009 can only come from inflating it.
        self.assertLess(len(bomb), 65536)
        peak_before = peak_rss(self.server.proc.pid)
        raw.send_frame(OP_TEXT, bomb, rsv=0x4)
        end = raw.read_until_end(5)
        self.assertEqual(end["close_code"], 1009)
        self.assertEqual(end["frames"], [])
        # The server's peak RSS grew by far less than the 32 MiB the bomb inflates to.
        self.assertLess(peak_rss(self.server.proc.pid) - peak_before, 4 * 1024 * 1024)
        # What the loop's stream holds stays a stream's size, not the message's.
        self.assertLess(await self.metric("realtime_inflate_memory_bytes"), 256 * 1024)

    @server_args("--max-message-bytes", "1000")
    async def test_message_just_over_the_limit_after_inflating_is_1009(self):
        raw = self.raw(headers=OFFER)
        message_json(next_data_frame(raw))
        text = json.dumps({"action": "ping", "ref": "x" * 1000}).encode()
        raw.send_frame(OP_TEXT, deflate(text), rsv=0x4)
        self.assertEqual(raw.read_until_end(5)["close_code"], 1009)

    async def test_rsv1_without_negotiation_is_1002(self):
        raw = self.raw()  # no offer
        self.assertIsNone(extensions_of(raw))
        message_json(next_data_frame(raw))
        raw.send_frame(OP_TEXT, deflate(b'{"action":"ping"}'), rsv=0x4)
        self.assertEqual(raw.read_until_end(5)["close_code"], 1002)

    async def test_rsv1_on_a_continuation_is_1002(self):
        raw = self.raw(headers=OFFER)
        message_json(next_data_frame(raw))
        data = deflate(json.dumps({"action": "ping", "ref": "y" * 100}).encode())
        raw.send_frame(OP_TEXT, data[:4], rsv=0x4, fin=False)
        raw.send_frame(OP_CONT, data[4:], rsv=0x4)
        self.assertEqual(raw.read_until_end(5)["close_code"], 1002)

    async def test_corrupt_compressed_data_is_1007(self):
        raw = self.raw(headers=OFFER)
        message_json(next_data_frame(raw))
        raw.send_frame(OP_TEXT, b"\xff\xff\xff\xff\xff", rsv=0x4)
        self.assertEqual(raw.read_until_end(5)["close_code"], 1007)

    async def test_inflated_invalid_utf8_is_1007(self):
        raw = self.raw(headers=OFFER)
        message_json(next_data_frame(raw))
        raw.send_frame(OP_TEXT, deflate(b'{"action":"ping","ref":"\xff\xfe"}'), rsv=0x4)
        self.assertEqual(raw.read_until_end(5)["close_code"], 1007)

    async def test_python_websockets_sends_and_receives_compressed(self):
        a, _ = await self.connect()
        b, _ = await self.connect(user_id="7")
        for ws in (a, b):
            self.assertEqual(len(ws.extensions), 1, "permessage-deflate negotiated")
            self.assertEqual((await self.command(ws, {"action": "subscribe", "topic": "chat:x"}))["type"], "subscribed")
        reply = await self.command(a, {"action": "publish", "topic": "chat:x", "message": ORDER})
        got_a = reply if reply["type"] == "order" else await self.recv_json(a)
        self.assertEqual(app(got_a), ORDER)
        self.assertEqual(app(await self.recv_json(b)), ORDER)

    async def test_node_ws_client_sends_and_receives_compressed(self):
        if shutil.which("node") is None or not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")):
            self.fail("needs node and tests/integration/node/node_modules/ws (scripts/install-deps.sh)")
        sub = self.raw_subscriber("chat:node", "permessage-deflate")
        url = f"ws://{HOST}:{self.port}/ws?token={urllib.parse.quote(self.token(), safe='')}"
        proc = await asyncio.create_subprocess_exec(
            "node", os.path.join(NODE_DIR, "ws_deflate.mjs"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        proc.stdin.write(json.dumps({"url": url, "topic": "chat:node", "publish": ORDER, "expect": 2}).encode())
        proc.stdin.close()
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        self.assertEqual(ready["extensions"], "permessage-deflate; server_no_context_takeover")
        # Its own publish (compressed by ws, threshold 0) came back to it and to the raw client.
        f = next_data_frame(sub)
        self.assertEqual(f.rsv, 4)
        self.assertEqual(app(message_json(f)), ORDER)
        await self.api_ok("POST", "/api/publish", {"topic": "chat:node", "message": dict(ORDER, id="api")})
        done = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        self.assertEqual(await asyncio.wait_for(proc.wait(), 10), 0, (await proc.stderr.read()).decode())
        self.assertEqual([app(m) for m in done["messages"]], [ORDER, dict(ORDER, id="api")])


class CompressionOffTest(RealtimeTestCase):
    """--compression off (the default): nothing is negotiated, RSV1 stays a protocol error."""

    async def test_offer_is_not_answered(self):
        raw = self.raw(headers=OFFER)
        self.assertIsNone(extensions_of(raw))
        message_json(next_data_frame(raw))
        raw.send_frame(OP_TEXT, deflate(b'{"action":"ping","ref":"' + b"z" * 100 + b'"}'), rsv=0x4)
        self.assertEqual(raw.read_until_end(5)["close_code"], 1002)

    async def test_python_websockets_negotiates_nothing(self):
        ws, _ = await self.connect()
        self.assertEqual(ws.extensions, [])
        self.assertIsNone(ws.response_headers.get("Sec-WebSocket-Extensions"))
        self.assertIsNone(await self.metric("realtime_compressed_connections"))

    @server_args("--compression", "off")
    async def test_explicit_off(self):
        raw = self.raw(headers=OFFER)
        self.assertIsNone(extensions_of(raw))


class CompressionOptionTest(RealtimeTestCase):
    """--compression from the environment and TOML, and its refused values."""

    @no_server
    async def test_environment_turns_it_on(self):
        self.server = self.start_server(env={"REALTIME_COMPRESSION": "on"})
        self.assertIsNotNone(extensions_of(self.raw(headers=OFFER)))
        self.assertIn("compression=on", self.server.log())

    @no_server
    async def test_toml_turns_it_on_as_a_string_or_a_boolean(self):
        for value in ('"on"', "true"):
            with self.subTest(value=value), tempfile.NamedTemporaryFile("w", suffix=".toml") as conf:
                conf.write(f"compression = {value}\n")
                conf.flush()
                srv = self.start_server(["--config", conf.name])
                raw = RawWS(srv.port, srv.token(), headers=OFFER)
                self.addCleanup(raw.close)
                self.assertIsNotNone(extensions_of(raw))

    @no_server
    async def test_other_values_are_refused(self):
        proc = subprocess.run([SERVER, "--jwt-secret", random_secret(), "--api-key", random_secret(),
                               "--compression", "yes"], capture_output=True, text=True, timeout=10)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("--compression: expected off or on", proc.stderr)
