"""The HTTP API at speed (docs/protocol.md, "Pipelining" and "POST /api/batch"): pipelined
requests on raw sockets answered in order, several connections at once, and batches of mixed
kinds with bad items, within the limits."""

import asyncio
import json
import re
import socket
import threading
import time
import unittest

from rt_harness import RealtimeTestCase, server_args, HOST

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def request(key, method, path, body=None, close=False, extra=b"") -> bytes:
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    if key is not None:
        head += f"Authorization: Bearer {key}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + extra + b"\r\n" + data


class RawHttp:
    """A keep-alive connection that reads answers one by one (Content-Length framed)."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""
        self.timeout = timeout

    def send(self, data: bytes):
        # From a thread: the server answers while the rest is still being sent.
        t = threading.Thread(target=self._send, args=(data,), daemon=True)
        t.start()
        return t

    def _send(self, data: bytes):
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, OSError):
            return False
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_response(self):
        """(status, headers dict lower-cased, parsed body), or None when the server closed."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                return None
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            if not self._fill():
                return None
            rest = self.buf.partition(b"\r\n\r\n")[2]
        body, self.buf = rest[:length], rest[length:]
        return status, headers, (json.loads(body) if body else None)

    def closed(self) -> bool:
        """True when the server has closed the connection with nothing more sent."""
        self.sock.settimeout(self.timeout)
        return not self._fill() and self.buf == b""

    def close(self):
        self.sock.close()


class PipelineTest(RealtimeTestCase):

    def raw_http(self) -> RawHttp:
        c = RawHttp(self.port)
        self.addCleanup(c.close)
        return c

    async def subscribers(self, n, topic):
        out = []
        for i in range(n):
            ws, c = await self.connect(user_id=f"sub{i}")
            reply = await self.command(ws, {"action": "subscribe", "topic": topic})
            self.assertEqual(reply["type"], "subscribed")
            out.append((ws, c))
        return out

    async def test_50_pipelined_requests_in_one_write(self):
        subs = await self.subscribers(3, "pipe:1")
        key = self.server.api_key
        # Answers that differ by kind, so that an answer out of place shows.
        reqs, expected, published = [], [], []
        for i in range(50):
            if i % 7 == 3:
                reqs.append(request(key, "GET", "/api/connections"))
                expected.append((200, {"count": 3}))
            elif i % 7 == 5:
                reqs.append(request(key, "POST", "/api/send-to-connection",
                                    {"connection-id": UNKNOWN_ID, "message": {"type": "x"}}))
                expected.append((200, {"delivered": False}))
            elif i % 11 == 9:
                reqs.append(request(key, "POST", "/api/publish", {"topic": "pipe:1"}))
                expected.append((400, {"error": "missing field: message"}))
            elif i % 13 == 12:
                reqs.append(request("wrong-key-wrong-key", "POST", "/api/publish",
                                    {"topic": "pipe:1", "message": {"type": "seq", "n": -1}}))
                expected.append((401, {"error": "Unauthorized"}))
            else:
                reqs.append(request(key, "POST", "/api/publish", {"topic": "pipe:1", "message": {"type": "seq", "n": i}}))
                expected.append((200, {"delivered": 3}))
                published.append(i)
        conn = self.raw_http()
        conn.send(b"".join(reqs)).join()
        answers = [await asyncio.to_thread(conn.read_response) for _ in reqs]
        self.assertEqual([(a[0], a[2]) if a else None for a in answers], expected)
        for ws, _ in subs:
            got = [(await self.recv_json(ws))["n"] for _ in published]
            self.assertEqual(got, published)
            await self.expect_silence(ws)
        # The connection is still usable afterwards.
        conn.send(request(key, "GET", "/api/connections")).join()
        self.assertEqual((await asyncio.to_thread(conn.read_response))[2], {"count": 3})

    async def test_more_requests_than_read_ahead_in_one_write(self):
        # 300 is past the per-connection bound on requests in flight: the rest waits its turn.
        (ws, _), = await self.subscribers(1, "pipe:big")
        key = self.server.api_key
        n = 300
        data = b"".join(request(key, "POST", "/api/publish", {"topic": "pipe:big", "message": {"type": "seq", "n": i}})
                        for i in range(n))
        conn = self.raw_http()
        sender = conn.send(data)
        answers = [await asyncio.to_thread(conn.read_response) for _ in range(n)]
        sender.join()
        self.assertEqual([(a[0], a[2]) for a in answers], [(200, {"delivered": 1})] * n)
        self.assertEqual([(await self.recv_json(ws))["n"] for _ in range(n)], list(range(n)))

    async def test_other_routes_in_a_pipeline_keep_their_place(self):
        key = self.server.api_key
        conn = self.raw_http()
        conn.send(request(key, "GET", "/api/connections") + request(None, "GET", "/health/realtime") +
                  request(key, "GET", "/api/connections") + request(None, "GET", "/nowhere") +
                  request(key, "GET", "/api/connections")).join()
        statuses = []
        for _ in range(5):
            status, _, body = await asyncio.to_thread(conn.read_response)
            statuses.append((status, body.get("status") or body.get("error") or body.get("count")))
        self.assertEqual(statuses, [(200, 0), (200, "healthy"), (200, 0), (404, "Not found"), (200, 0)])

    async def test_connection_close_ends_the_pipeline(self):
        (ws, _), = await self.subscribers(1, "pipe:close")
        key = self.server.api_key
        pub = lambda n, **kw: request(key, "POST", "/api/publish",
                                      {"topic": "pipe:close", "message": {"type": "seq", "n": n}}, **kw)
        conn = self.raw_http()
        conn.send(pub(0) + pub(1) + pub(2, close=True) + pub(3) + pub(4)).join()
        answers = [await asyncio.to_thread(conn.read_response) for _ in range(3)]
        self.assertEqual([a[0] for a in answers], [200, 200, 200])
        self.assertNotIn("connection", answers[0][1])
        self.assertEqual(answers[2][1].get("connection"), "close")
        self.assertTrue(await asyncio.to_thread(conn.closed))
        # Requests after the one that asked to close are neither answered nor carried out.
        self.assertEqual([(await self.recv_json(ws))["n"] for _ in range(3)], [0, 1, 2])
        await self.expect_silence(ws)

    @server_args("--max-body-bytes", "1024")
    async def test_body_limit_in_a_pipeline(self):
        (ws, _), = await self.subscribers(1, "pipe:limit")
        key = self.server.api_key
        pub = lambda n, pad="": request(key, "POST", "/api/publish",
                                        {"topic": "pipe:limit", "message": {"type": "seq", "n": n, "pad": pad}})
        conn = self.raw_http()
        conn.send(pub(0) + pub(1) + pub(2, "x" * 2000) + pub(3)).join()
        answers = [await asyncio.to_thread(conn.read_response) for _ in range(3)]
        self.assertEqual([(a[0], a[2]) for a in answers],
                         [(200, {"delivered": 1}), (200, {"delivered": 1}), (413, {"error": "Request body too large"})])
        self.assertEqual(answers[2][1].get("connection"), "close")
        self.assertTrue(await asyncio.to_thread(conn.closed))
        self.assertEqual([(await self.recv_json(ws))["n"] for _ in range(2)], [0, 1])
        await self.expect_silence(ws)

    async def test_eight_connections_pipelining_at_once(self):
        subs = await self.subscribers(2, "pipe:multi")
        key = self.server.api_key
        per_conn = 40
        conns = [self.raw_http() for _ in range(8)]
        payloads = [b"".join(request(key, "POST", "/api/publish",
                                     {"topic": "pipe:multi", "message": {"type": "seq", "c": c, "n": i}})
                             for i in range(per_conn)) for c in range(8)]
        senders = [conn.send(p) for conn, p in zip(conns, payloads)]
        for t in senders:
            t.join()

        def read_all(conn):
            return [conn.read_response() for _ in range(per_conn)]

        results = await asyncio.gather(*(asyncio.to_thread(read_all, c) for c in conns))
        for answers in results:
            self.assertEqual([(a[0], a[2]) for a in answers], [(200, {"delivered": 2})] * per_conn)
        for ws, _ in subs:
            seen = {c: [] for c in range(8)}
            for _ in range(8 * per_conn):
                m = await self.recv_json(ws)
                seen[m["c"]].append(m["n"])
            # Every message once, each connection's in the order it was sent.
            self.assertEqual(seen, {c: list(range(per_conn)) for c in range(8)})
            await self.expect_silence(ws)


class BatchTest(RealtimeTestCase):

    async def batch(self, items, **kw):
        return await self.api("POST", "/api/batch", items, **kw)

    async def test_mixed_kinds_and_bad_items(self):
        a, ca = await self.connect(user_id="alice", roles=["admin"])
        b, cb = await self.connect(user_id="bob")
        items = [
            {"kind": "subscribe", "connection-id": cb["connection-id"], "topic": "t:1"},
            {"kind": "send-to-user", "user-id": "alice", "message": {"type": "m", "n": 1}},
            {"kind": "send-to-role", "role": "admin", "message": {"type": "m", "n": 2}},
            "not an object",
            {"kind": "broadcast", "message": {"type": "m", "n": 3}},
            {"kind": "no-such-kind", "message": {"type": "m"}},
            {"kind": "publish", "topic": "t:1", "message": {"type": "m", "n": 4}},
            {"kind": "publish", "topic": "t:1"},
            {"kind": "send-to-connection", "connection-id": ca["connection-id"], "message": {"type": "m", "n": 5}},
            {"message": {"type": "m"}},
            {"kind": "send-to-connection", "connection-id": UNKNOWN_ID, "message": {"type": "m", "n": 6}},
            {"kind": "publish", "topic": "bad topic", "message": {"type": "m"}},
            {"kind": "connections"},
            {"kind": "batch"},
            {"kind": "unsubscribe", "connection-id": cb["connection-id"], "topic": "t:1"},
            {"kind": "publish", "topic": "t:1", "message": {"type": "m", "n": 7}},
            {"kind": "send-to-user", "user-id": "bob", "message": {"type": "m", "n": 8}},
        ]
        status, data = await self.batch(items)
        self.assertEqual(status, 200, data)
        self.assertEqual(data, {"results": [
            {"status": 200, "subscribed": True},
            {"status": 200, "delivered": 1},
            {"status": 200, "delivered": 1},
            {"status": 400, "error": "item must be a JSON object"},
            {"status": 200, "delivered": 2},
            {"status": 400, "error": "unknown kind: no-such-kind"},
            {"status": 200, "delivered": 1},
            {"status": 400, "error": "missing field: message"},
            {"status": 200, "delivered": True},
            {"status": 400, "error": "item must have a string kind"},
            {"status": 200, "delivered": False},
            {"status": 400, "error": "topic must be 1-256 bytes without whitespace or control characters"},
            {"status": 400, "error": "unknown kind: connections"},
            {"status": 400, "error": "unknown kind: batch"},
            {"status": 200, "unsubscribed": True},
            {"status": 200, "delivered": 0},
            {"status": 200, "delivered": 1},
        ]})
        # Each connection got its messages in item order, and nothing else.
        self.assertEqual([(await self.recv_json(a))["n"] for _ in range(4)], [1, 2, 3, 5])
        self.assertEqual([(await self.recv_json(b))["n"] for _ in range(3)], [3, 4, 8])
        await self.expect_silence(a)
        await self.expect_silence(b)

    async def test_hundred_publishes_in_order(self):
        ws, _ = await self.connect()
        await self.command(ws, {"action": "subscribe", "topic": "t:order"})
        status, data = await self.batch([{"kind": "publish", "topic": "t:order", "message": {"type": "m", "n": i}}
                                         for i in range(100)])
        self.assertEqual(status, 200, data)
        self.assertEqual(data["results"], [{"status": 200, "delivered": 1}] * 100)
        self.assertEqual([(await self.recv_json(ws))["n"] for _ in range(100)], list(range(100)))

    async def test_empty_batch(self):
        self.assertEqual(await self.batch([]), (200, {"results": []}))

    async def test_body_must_be_an_array(self):
        ws, _ = await self.connect()
        for body in ('{"kind": "broadcast", "message": {"type": "x"}}', "[", "", "null", '[{"a":1,"a":2}]'):
            with self.subTest(body=body):
                status, data = await self.batch(body)
                self.assertEqual(status, 400, data)
                self.assertIsInstance(data.get("error"), str)
        await self.expect_silence(ws)

    async def test_item_bound(self):
        ws, _ = await self.connect()
        item = {"kind": "broadcast", "message": {"type": "x"}}
        status, data = await self.batch([item] * 1001)
        self.assertEqual(status, 413, data)
        self.assertEqual(data, {"error": "a batch carries at most 1000 items"})
        await self.expect_silence(ws)
        status, data = await self.batch([item] * 1000)
        self.assertEqual(status, 200, data)
        self.assertEqual(len(data["results"]), 1000)

    @server_args("--max-body-bytes", "2048")
    async def test_max_body_bytes_applies(self):
        ws, _ = await self.connect()
        items = [{"kind": "broadcast", "message": {"type": "x", "n": i}} for i in range(100)]
        self.assertGreater(len(json.dumps(items)), 2048)
        status, data = await self.batch(items)
        self.assertEqual(status, 413, data)
        await self.expect_silence(ws)

    async def test_needs_the_api_key(self):
        ws, _ = await self.connect()
        status, data = await self.batch([{"kind": "broadcast", "message": {"type": "x"}}], key="wrong")
        self.assertEqual(status, 401, data)
        await self.expect_silence(ws)

    async def test_get_is_405(self):
        status, _ = await self.api("GET", "/api/batch")
        self.assertEqual(status, 405)


if __name__ == "__main__":
    unittest.main()
