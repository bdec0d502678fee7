"""/metrics read by a real Prometheus parser (Debian's python3-prometheus-client) in both
exposition formats, HEAD on the GET routes, and the Grafana dashboard's metric names."""

from __future__ import annotations

import asyncio
import json
import os
import re

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from rt_harness import HERE, SERVER, RealtimeTestCase, ServerProcess, free_port, http_request, no_server

OPENMETRICS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                      "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus 2.x sends
DASHBOARD = os.path.join(HERE, "..", "..", "docs", "grafana", "realtime-server.json")

GAUGES = {"realtime_connections"}
COUNTERS = {
    "realtime_connections_accepted", "realtime_messages_received", "realtime_messages_sent",
    "realtime_bytes_received", "realtime_bytes_sent", "realtime_dropped_messages",
    "realtime_slow_consumer_disconnects", "realtime_idle_disconnects", "realtime_token_expired_disconnects",
    "realtime_token_refreshes", "realtime_auth_failures",
    "realtime_protocol_errors", "realtime_command_errors", "realtime_rate_limited", "realtime_api_requests",
    "realtime_api_errors", "realtime_accept_errors", "realtime_subscribe_proxy_requests",
    "realtime_subscribe_proxy_allowed", "realtime_subscribe_proxy_denied", "realtime_subscribe_proxy_errors",
    "realtime_subscribe_proxy_overloaded", "realtime_upgrades_refused", "realtime_handshake_timeouts",
}
CLUSTER_GAUGES = {"realtime_redis_up"}
CLUSTER_COUNTERS = {"realtime_redis_reconnects", "realtime_cluster_reply_timeouts"}
COMPRESSION_GAUGES = {"realtime_compressed_connections", "realtime_inflate_memory_bytes"}
HISTORY_GAUGES = {"realtime_history_streams", "realtime_history_messages", "realtime_history_bytes"}
HISTORY_COUNTERS = {"realtime_history_evictions", "realtime_history_expirations"}
PRESENCE_GAUGES = {"realtime_presence_topics", "realtime_presence_users"}
JWKS_GAUGES = {"realtime_jwks_keys"}
JWKS_COUNTERS = {"realtime_jwks_refreshes"}  # labelled by result


def families(parse, text: str) -> dict:
    """family name -> (type, {sample name: value}); fails on a family name seen twice."""
    out = {}
    for fam in parse(text):
        assert fam.name not in out, f"family {fam.name} appears twice"
        out[fam.name] = (fam.type, {s.name: s.value for s in fam.samples})
    return out


class MetricsFormatsTest(RealtimeTestCase):

    async def scrape(self, accept: str | None):
        headers = {"Accept": accept} if accept else {}
        status, hdrs, body = await asyncio.to_thread(http_request, self.server.port, "GET", "/metrics", None, headers)
        self.assertEqual(status, 200)
        return hdrs["content-type"], body.decode("utf-8")

    async def activity(self):
        """Two connections, one of them closed, one broadcast, one refused upgrade."""
        a, _ = await self.connect(user_id="1")
        b, _ = await self.connect(user_id="2")
        self.assertEqual((await self.api_ok("POST", "/api/broadcast", {"message": {"type": "m"}}))["delivered"], 2)
        await self.recv_json(a)
        await self.recv_json(b)
        await a.send('{"action":"ping"}')
        await self.recv_json(a)
        await a.close()
        status, _, _ = await asyncio.to_thread(http_request, self.server.port, "GET", "/ws?token=bad", None, {
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        self.assertEqual(status, 401)
        await self.eventually(lambda: self.metric("realtime_connections"), lambda v: v == 1,
                              what="realtime_connections == 1")

    async def test_text_format_parses_with_prometheus_client(self):
        await self.activity()
        content_type, text = await self.scrape(None)
        self.assertEqual(content_type, "text/plain; version=0.0.4; charset=utf-8")
        self.assertNotIn("# EOF", text)
        fams = families(parse_text, text)
        self.check_values(fams)
        self.assertRegex(text, r"(?m)^# TYPE realtime_connections_accepted_total counter$")

    async def test_openmetrics_when_asked(self):
        await self.activity()
        content_type, text = await self.scrape(OPENMETRICS_ACCEPT)
        self.assertEqual(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8")
        self.assertTrue(text.endswith("# EOF\n"), text[-40:])
        self.assertRegex(text, r"(?m)^# TYPE realtime_connections_accepted counter$")
        fams = families(parse_openmetrics, text)
        self.check_values(fams)

    async def test_accept_without_openmetrics_gets_text(self):
        content_type, _ = await self.scrape("text/plain")
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"))

    def check_values(self, fams: dict):
        self.assertEqual(set(fams), GAUGES | COUNTERS)
        for name in GAUGES:
            self.assertEqual(fams[name][0], "gauge", name)
        for name in COUNTERS:
            self.assertEqual(fams[name][0], "counter", name)
            self.assertEqual(set(fams[name][1]), {name + "_total"}, name)
        gauge = lambda n: fams[n][1][n]
        total = lambda n: fams[n][1][n + "_total"]
        self.assertEqual(gauge("realtime_connections"), 1)
        self.assertEqual(total("realtime_connections_accepted"), 2)
        self.assertEqual(total("realtime_messages_received"), 1)
        self.assertGreaterEqual(total("realtime_messages_sent"), 2)
        self.assertEqual(total("realtime_auth_failures"), 1)
        self.assertEqual(total("realtime_handshake_timeouts"), 0)
        self.assertEqual(total("realtime_api_requests"), 1)
        self.assertEqual(total("realtime_api_errors"), 0)
        self.assertGreater(total("realtime_bytes_sent"), 0)

    @no_server
    async def test_cluster_families_in_both_formats(self):
        # Redis unreachable: the node still serves (health "degraded") and reports it.
        self.server = self.start_server(["--redis", f"redis://127.0.0.1:{free_port()}"])
        for parse, accept in ((parse_text, None), (parse_openmetrics, OPENMETRICS_ACCEPT)):
            _, text = await self.scrape(accept)
            fams = families(parse, text)
            self.assertEqual(set(fams), GAUGES | COUNTERS | CLUSTER_GAUGES | CLUSTER_COUNTERS)
            self.assertEqual(fams["realtime_redis_up"], ("gauge", {"realtime_redis_up": 0.0}))
            for name in CLUSTER_COUNTERS:
                self.assertEqual(fams[name][0], "counter")


    @no_server
    async def test_compression_families_in_both_formats(self):
        self.server = self.start_server(["--compression", "on"])
        await self.connect()  # websockets offers permessage-deflate
        for parse, accept in ((parse_text, None), (parse_openmetrics, OPENMETRICS_ACCEPT)):
            _, text = await self.scrape(accept)
            fams = families(parse, text)
            self.assertEqual(set(fams), GAUGES | COUNTERS | COMPRESSION_GAUGES)
            self.assertEqual(fams["realtime_compressed_connections"],
                             ("gauge", {"realtime_compressed_connections": 1.0}))
            self.assertEqual(fams["realtime_inflate_memory_bytes"][0], "gauge")

    @no_server
    async def test_history_families_in_both_formats(self):
        self.server = self.start_server(["--history", "chat:**=10"])
        await self.api_ok("POST", "/api/publish", {"topic": "chat:a", "message": {"type": "m"}})
        for parse, accept in ((parse_text, None), (parse_openmetrics, OPENMETRICS_ACCEPT)):
            _, text = await self.scrape(accept)
            fams = families(parse, text)
            self.assertEqual(set(fams), GAUGES | COUNTERS | HISTORY_GAUGES | HISTORY_COUNTERS)
            for name in HISTORY_GAUGES:
                self.assertEqual(fams[name][0], "gauge", name)
            for name in HISTORY_COUNTERS:
                self.assertEqual((fams[name][0], set(fams[name][1])), ("counter", {name + "_total"}), name)
            self.assertEqual(fams["realtime_history_messages"][1]["realtime_history_messages"], 1)
            self.assertEqual(fams["realtime_history_streams"][1]["realtime_history_streams"], 1)

    @no_server
    async def test_presence_families_in_both_formats(self):
        self.server = self.start_server(["--presence", "room:*"])
        for user in ("a", "b"):
            ws, _ = await self.connect(user_id=user)
            for topic in ("room:1", "room:2") if user == "a" else ("room:1",):
                await ws.send(json.dumps({"action": "subscribe", "topic": topic}))
                while (reply := await self.recv_json(ws))["type"] == "presence-join":
                    pass
                self.assertEqual(reply["type"], "subscribed")
        for parse, accept in ((parse_text, None), (parse_openmetrics, OPENMETRICS_ACCEPT)):
            _, text = await self.scrape(accept)
            fams = families(parse, text)
            self.assertEqual(set(fams), GAUGES | COUNTERS | PRESENCE_GAUGES)
            self.assertEqual(fams["realtime_presence_topics"], ("gauge", {"realtime_presence_topics": 2.0}))
            self.assertEqual(fams["realtime_presence_users"], ("gauge", {"realtime_presence_users": 3.0}))

    @no_server
    async def test_jwks_families_in_both_formats(self):
        # JWKS endpoint unreachable: the node serves, refuses tokens and counts the failed fetch.
        self.server = self.start_server(["--jwt-jwks-url", f"http://127.0.0.1:{free_port()}/jwks.json"])
        await self.eventually(lambda: self.metric("realtime_jwks_refreshes_total"), lambda v: v == 1,
                              what="one failed JWKS fetch")
        for parse, accept in ((parse_text, None), (parse_openmetrics, OPENMETRICS_ACCEPT)):
            _, text = await self.scrape(accept)
            fams = families(parse, text)
            self.assertEqual(set(fams), GAUGES | COUNTERS | JWKS_GAUGES | JWKS_COUNTERS)
            self.assertEqual(fams["realtime_jwks_keys"], ("gauge", {"realtime_jwks_keys": 0.0}))
            self.assertEqual(fams["realtime_jwks_refreshes"][0], "counter")
        self.assertIn('realtime_jwks_refreshes_total{result="ok"} 0\n', text)
        self.assertIn('realtime_jwks_refreshes_total{result="error"} 1\n', text)


class HeadTest(RealtimeTestCase):

    async def compare(self, path: str, headers: dict | None = None):
        get = await asyncio.to_thread(http_request, self.server.port, "GET", path, None, headers)
        head = await asyncio.to_thread(http_request, self.server.port, "HEAD", path, None, headers)
        self.assertEqual(head[0], get[0], path)
        self.assertEqual(head[2], b"", path)
        self.assertEqual(head[1]["content-type"], get[1]["content-type"], path)
        self.assertEqual(int(head[1]["content-length"]), len(get[2]), path)
        return head

    async def test_head_on_health_metrics_and_get_api_routes(self):
        self.assertEqual((await self.compare("/health/realtime"))[0], 200)
        self.assertEqual((await self.compare("/metrics"))[0], 200)
        om = await self.compare("/metrics", {"Accept": "application/openmetrics-text"})
        self.assertTrue(om[1]["content-type"].startswith("application/openmetrics-text"))
        auth = {"Authorization": f"Bearer {self.server.api_key}"}
        self.assertEqual((await self.compare("/api/connections", auth))[0], 200)
        self.assertEqual((await self.compare("/api/connections"))[0], 401)
        self.assertEqual((await self.compare("/api/broadcast", auth))[0], 405)
        self.assertEqual((await self.compare("/nope"))[0], 404)

    async def test_keep_alive_survives_a_head(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        try:
            conn.request("HEAD", "/health/realtime")
            r = conn.getresponse()
            self.assertEqual((r.status, r.read()), (200, b""))
            conn.request("GET", "/health/realtime")
            r = conn.getresponse()
            self.assertEqual(json.loads(r.read())["status"], "healthy")
        finally:
            conn.close()


class DevAssetsHeadTest(RealtimeTestCase):

    @no_server
    async def test_head_on_dev_page_assets(self):
        srv = ServerProcess()
        srv.args = [SERVER, "--host", "127.0.0.1", "--port", str(srv.port), "--threads", "1"]  # dev mode
        srv.env = {k: v for k, v in srv.env.items() if not k.startswith("REALTIME_")}
        self.addCleanup(self._stop_server, srv, 0)
        self.server = srv.start()
        for path, kind in (("/", "text/html"), ("/realtime-client.js", "text/javascript")):
            head = await self.compare(path)
            self.assertEqual(head[0], 200, path)
            self.assertTrue(head[1]["content-type"].startswith(kind), head[1])

    compare = HeadTest.compare


class GrafanaDashboardTest(RealtimeTestCase):
    SERVER_ARGS = ["--redis", f"redis://127.0.0.1:{free_port()}"]  # cluster families too

    def test_dashboard_is_valid_json_with_panels(self):
        with open(DASHBOARD, encoding="utf-8") as f:
            dash = json.load(f)
        self.assertTrue(dash["panels"])
        for panel in dash["panels"]:
            self.assertTrue(panel.get("targets"), panel["title"])

    def test_every_metric_the_dashboard_uses_is_exported(self):
        with open(DASHBOARD, encoding="utf-8") as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        for var in dash["templating"]["list"]:
            if isinstance(var.get("query"), dict):
                exprs.append(var["query"]["query"])
        used = {m for e in exprs for m in re.findall(r"\brealtime_[a-z_]+\b", e)}
        self.assertGreaterEqual(len(used), 15, used)
        exported = {s.name for fam in parse_text(self.server.metrics_text()) for s in fam.samples}
        self.assertEqual(used - exported, set(), "dashboard metrics missing from /metrics")
