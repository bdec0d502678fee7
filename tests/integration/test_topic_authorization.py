"""Topic authorization: --subscribe-policy claims (the token's `topics` claim) and proxy (a real
HTTP backend on loopback answering each subscribe)."""

import asyncio
import http.server
import json
import threading
import time
import unittest

from local_ca import LocalCA
from rt_harness import RealtimeTestCase, free_port, make_jwt, server_args


class Backend:
    """http.server in a thread on 127.0.0.1:0; `answer(request_json) -> (status, body, delay)`."""

    def __init__(self, answer, tls=None):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = {"path": self.path, "auth": self.headers.get("Authorization"),
                       "content_type": self.headers.get("Content-Type"), "json": json.loads(body)}
                outer.requests.append(req)
                status, reply, delay = answer(req["json"])
                time.sleep(delay)
                data = reply.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls:
            self.httpd.socket = tls.server_context().wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}/authorize"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def decide(topic_json):
    topic = topic_json["topic"]
    if topic.startswith("ok:"):
        return 200, '{"allow":true}', 0
    if topic.startswith("no:"):
        return 200, '{"allow":false}', 0
    if topic.startswith("err:"):
        return 500, '{"allow":true}', 0
    if topic.startswith("bad:"):
        return 200, '{"allow":tru', 0
    if topic.startswith("slow:"):
        return 200, '{"allow":true}', 1.5
    return 404, "", 0


class Base(RealtimeTestCase):
    async def subscribe(self, ws, topic):
        return await self.command(ws, {"action": "subscribe", "topic": topic})

    def assert_subscribed(self, reply, topic):
        self.assertEqual(reply, {"type": "subscribed", "topic": topic})

    def assert_forbidden(self, reply):
        self.assertEqual(reply.get("type"), "error", reply)
        self.assertEqual(reply.get("code"), "forbidden", reply)


class ClaimsPolicyTest(Base):
    SERVER_ARGS = ["--subscribe-policy", "claims"]

    async def test_matched_topics_allowed_unmatched_forbidden_own_user_topic_allowed(self):
        ws, _ = await self.connect(token=self.token("42", ["staff"], topics=["order:*", "chat:**"]))
        self.assert_subscribed(await self.subscribe(ws, "order:7"), "order:7")
        self.assert_subscribed(await self.subscribe(ws, "chat:a:b"), "chat:a:b")
        self.assert_forbidden(await self.subscribe(ws, "order:7:x"))
        self.assert_forbidden(await self.subscribe(ws, "news"))
        self.assert_subscribed(await self.subscribe(ws, "user:42"), "user:42")
        self.assert_subscribed(await self.subscribe(ws, "role:staff"), "role:staff")
        self.assert_forbidden(await self.subscribe(ws, "user:43"))

    async def test_token_without_topics_only_gets_its_own_topics(self):
        ws, _ = await self.connect()
        self.assert_forbidden(await self.subscribe(ws, "order:7"))
        self.assert_subscribed(await self.subscribe(ws, "user:42"), "user:42")

    async def test_malformed_topics_claim_is_401(self):
        import websockets.exceptions
        for topics in ("order:*", ["a:**:b"], [""], [1], ["x"] * 65, ["a" * 257]):
            with self.subTest(topics=topics):
                token = self.token("42", topics=topics)
                with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
                    await self.connect(token=token)
                self.assertEqual(cm.exception.status_code, 401)


class ProxyPolicyTest(Base):
    def setUp(self):
        self.backend = Backend(decide)
        self.addCleanup(self.backend.stop)
        extra = getattr(getattr(self, self._testMethodName), "proxy_args", [])
        self.SERVER_ARGS = ["--subscribe-proxy", self.backend.url, "--proxy-timeout", "500", *extra]
        super().setUp()

    async def test_allow_true_allows_and_backend_gets_json_and_api_key(self):
        ws, connected = await self.connect(user_id="42")
        self.assert_subscribed(await self.subscribe(ws, "ok:1"), "ok:1")
        req = self.backend.requests[-1]
        self.assertEqual(req["path"], "/authorize")
        self.assertEqual(req["auth"], f"Bearer {self.server.api_key}")
        self.assertEqual(req["json"], {"user-id": "42", "connection-id": connected["connection-id"],
                                       "topic": "ok:1"})
        self.assertEqual(await self.metric("realtime_subscribe_proxy_allowed_total"), 1)

    async def test_refusals(self):
        ws, _ = await self.connect()
        for topic in ("no:1", "err:1", "bad:1", "other:1"):
            with self.subTest(topic=topic):
                self.assert_forbidden(await self.subscribe(ws, topic))
        self.assertEqual(await self.metric("realtime_subscribe_proxy_denied_total"), 4)
        await self.assert_ping_works(ws)

    async def test_timeout_refuses(self):
        ws, _ = await self.connect()
        started = time.monotonic()
        self.assert_forbidden(await self.subscribe(ws, "slow:1"))
        self.assertLess(time.monotonic() - started, 1.4)
        self.assertEqual(await self.metric("realtime_subscribe_proxy_errors_total"), 1)

    async def test_built_in_rule_applies_before_the_backend(self):
        ws, _ = await self.connect(user_id="42")
        self.assert_forbidden(await self.subscribe(ws, "user:43"))
        self.assertEqual(self.backend.requests, [])

    async def test_in_flight_limit_refuses_at_once(self):
        self.backend.stop()
        # A backend that takes long: the first subscribe holds the one slot.
        self.backend = Backend(lambda j: (200, '{"allow":true}', 0.4))
        self.addCleanup(self.backend.stop)
        self.server.stop()
        self.server = self.start_server(["--subscribe-proxy", self.backend.url, "--proxy-timeout", "3000",
                                         "--proxy-max-in-flight", "1"])
        a, _ = await self.connect()
        b, _ = await self.connect()
        await a.send(json.dumps({"action": "subscribe", "topic": "t:1"}))
        await asyncio.sleep(0.1)
        self.assert_forbidden(await self.subscribe(b, "t:2"))
        self.assert_subscribed(await self.recv_json(a), "t:1")
        self.assertEqual(await self.metric("realtime_subscribe_proxy_overloaded_total"), 1)


class ProxyDownTest(Base):
    def setUp(self):
        self.SERVER_ARGS = ["--subscribe-policy", "proxy", "--subscribe-proxy",
                            f"http://127.0.0.1:{free_port()}/x", "--proxy-timeout", "1000"]
        super().setUp()

    async def test_backend_down_refuses(self):
        ws, _ = await self.connect()
        self.assert_forbidden(await self.subscribe(ws, "ok:1"))
        self.assertEqual(await self.metric("realtime_subscribe_proxy_errors_total"), 1)


class ProxyHttpsTest(Base):
    """--subscribe-proxy https://: the certificate is checked against the system trust store,
    here a test CA given through OpenSSL's SSL_CERT_FILE."""

    @classmethod
    def setUpClass(cls):
        cls.ca = LocalCA()

    @classmethod
    def tearDownClass(cls):
        cls.ca.remove()

    def setUp(self):
        self.server = None
        self.backend = Backend(decide, tls=self.ca)
        self.addCleanup(self.backend.stop)

    async def test_https_backend_answers(self):
        self.server = self.start_server(["--subscribe-proxy", self.backend.url], env={"SSL_CERT_FILE": self.ca.ca_file})
        ws, _ = await self.connect(user_id="42")
        self.assert_subscribed(await self.subscribe(ws, "ok:1"), "ok:1")
        self.assert_forbidden(await self.subscribe(ws, "no:1"))
        self.assertEqual(self.backend.requests[0]["auth"], f"Bearer {self.server.api_key}")
        self.assertEqual(await self.metric("realtime_subscribe_proxy_allowed_total"), 1)

    async def test_untrusted_certificate_refuses(self):
        self.server = self.start_server(["--subscribe-proxy", self.backend.url])
        ws, _ = await self.connect(user_id="42")
        self.assert_forbidden(await self.subscribe(ws, "ok:1"))
        self.assertEqual(self.backend.requests, [])
        self.assertEqual(await self.metric("realtime_subscribe_proxy_errors_total"), 1)


class ConfigTest(Base):
    def start_expecting_error(self, args, text):
        from rt_harness import ServerProcess
        srv = ServerProcess(args)
        import subprocess
        out = subprocess.run(srv.args, capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 2, out)
        self.assertIn(text, out.stderr + out.stdout)

    def setUp(self):
        self.server = None

    def test_bad_options_stop_the_server(self):
        self.start_expecting_error(["--subscribe-policy", "maybe"], "--subscribe-policy")
        self.start_expecting_error(["--subscribe-policy", "proxy"], "--subscribe-proxy")
        self.start_expecting_error(["--subscribe-proxy", "ftp://x/y"], "expected http[s]://")
        self.start_expecting_error(["--subscribe-policy", "claims", "--subscribe-proxy", "http://x/"],
                                   "--subscribe-proxy")


if __name__ == "__main__":
    unittest.main()
