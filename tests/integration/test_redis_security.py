"""Redis security in cluster mode (docs/cluster.md, "Redis security"): passwords (URL, file,
environment), ACL users (one limited to the prefix's keys and channels), the --redis-prefix
isolation of two clusters on one Redis, the node id claim, and TLS (rediss://) with a CA and
server certificate made here. Every Redis is a real redis-server started by the test on a free
loopback port; every wait has a deadline."""

import asyncio
import datetime
import ipaddress
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import websockets
import websockets.client

from rt_harness import (DEFAULT_TIMEOUT, HOST, RealtimeTestCase, RedisProcess, ServerProcess, free_port,
                        no_server, random_secret, redis_key_slot)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover - python3-cryptography is in scripts/install-deps.sh
    x509 = None

PASSWORD = "s3cret p@ss/w:rd%"  # every character that needs escaping in a URL
ESCAPED = urllib.parse.quote(PASSWORD, safe="")


# ------------------------------------------------------------------------------------------
# A redis-server with a password and/or TLS, and a RESP client that logs in first

def _read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise OSError(f"unexpected RESP line {line!r}")


def _encode(args) -> bytes:
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = str(a).encode() if isinstance(a, (str, int)) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class SecureRedis(RedisProcess):
    """RedisProcess with `requirepass` (admin_password, the default user's) and optionally TLS
    (`tls`: (cert, key, ca) files; the plain port is closed)."""

    def __init__(self, extra_args=(), admin_password: str | None = None, tls=None, check_hostname=True,
                 client_cert=None):
        args = list(extra_args)
        if admin_password:
            args += ["--requirepass", admin_password]
        if tls:
            cert, key, ca = tls
            args += ["--port", "0", "--tls-port", "PORT", "--tls-cert-file", cert, "--tls-key-file", key,
                     "--tls-ca-cert-file", ca, "--tls-auth-clients", "yes" if client_cert else "no"]
        super().__init__(args)
        self._args_template = args
        self.on_new_port()
        self.admin_password = admin_password
        self.client_tls = None
        if tls:
            self.client_tls = ssl.create_default_context(cafile=tls[2])
            self.client_tls.check_hostname = check_hostname
            if client_cert:
                self.client_tls.load_cert_chain(*client_cert)

    def on_new_port(self):
        extra = self.extra_args[len(self._args_template):]  # added after construction
        self.extra_args = [str(self.port) if a == "PORT" else a for a in self._args_template] + extra

    def url_with(self, userinfo: str = "", scheme: str | None = None) -> str:
        scheme = scheme or ("rediss" if self.client_tls else "redis")
        return f"{scheme}://{userinfo + '@' if userinfo else ''}{HOST}:{self.port}"

    def command(self, *args, timeout: float = DEFAULT_TIMEOUT):
        sock = socket.create_connection((HOST, self.port), timeout=timeout)
        if self.client_tls:
            sock = self.client_tls.wrap_socket(sock, server_hostname=HOST)
        with sock, sock.makefile("rb") as f:
            if self.admin_password:
                sock.sendall(_encode(["AUTH", self.admin_password]))
                _read_reply(f)
            sock.sendall(_encode(args))
            return _read_reply(f)


# ------------------------------------------------------------------------------------------
# Certificates made for the test

def _name(cn: str):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_leaf(ca, cn: str, sans):
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            # Client use too: a Redis Cluster's bus (tls-cluster) presents it to the other masters.
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def write_pem(directory: str, name: str, key=None, cert=None) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        if cert is not None:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return path


# ------------------------------------------------------------------------------------------

class RedisSecurityTestCase(RealtimeTestCase):
    """Nodes share a JWT secret and API key; each test starts its own Redis."""

    def setUp(self):
        self.server = None
        self.secret = random_secret(48)
        self.key = secrets.token_hex(16)
        self.nodes: list[ServerProcess] = []

    def start_redis(self, **kw) -> SecureRedis:
        redis = SecureRedis(**kw).start()
        self.addCleanup(redis.remove_log)
        self.addCleanup(redis.stop)
        return redis

    def node(self, url: str, node_id: str, args=(), env=None) -> ServerProcess:
        return ServerProcess(["--publish-patterns", "**", *args], jwt_secret=self.secret, api_key=self.key,
                             redis=url, node_id=node_id, env=env)

    def start_node(self, url: str, node_id: str, args=(), env=None) -> ServerProcess:
        srv = self.node(url, node_id, args, env)
        self.addCleanup(self._stop_node, srv)
        self.nodes.append(srv)
        srv.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, body = srv.health()
            if status == 200 and body.get("redis") == "up":
                return srv
            time.sleep(0.05)
        self.fail(f"{node_id} did not reach redis within 10s\n{srv.log()}")

    def start_degraded_node(self, url: str, node_id: str, args=(), env=None) -> ServerProcess:
        srv = self.node(url, node_id, args, env)
        self.addCleanup(self._stop_node, srv)
        self.nodes.append(srv)
        return srv.start()

    def refused_start(self, url: str, node_id: str, args=(), env=None) -> tuple[int, str]:
        """Runs a node that must refuse to start; its exit status and output."""
        srv = self.node(url, node_id, args, env)
        self.addCleanup(srv.remove_log)
        try:
            p = subprocess.run(srv.args, env=srv.env, capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self.fail(f"{node_id} kept running: {e.stdout!r} {e.stderr!r}")
        return p.returncode, p.stdout + p.stderr

    def _stop_node(self, srv: ServerProcess):
        code = srv.stop()
        if code != 0:
            print(f"\n----- log of {srv.node_id} -----\n{srv.log()}")
        srv.remove_log()

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        ret = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            for srv in getattr(self, "nodes", []):
                print(f"\n----- log of {srv.node_id} -----\n{srv.log()}")
        return ret

    async def join(self, node: ServerProcess, user_id: str, roles=None):
        token = node.token(user_id, roles)
        uri = f"ws://{HOST}:{node.port}/ws?token={urllib.parse.quote(token, safe='')}"
        ws = await websockets.client.connect(uri, max_queue=None, open_timeout=DEFAULT_TIMEOUT, close_timeout=2)
        self.addAsyncCleanup(self._close_ws, ws)
        hello = await self.recv_json(ws)
        self.assertEqual(hello["type"], "connected")
        return ws

    async def ok(self, node: ServerProcess, path: str, body=None, method="POST"):
        status, data = await asyncio.to_thread(node.api_sync, method, path, body)
        self.assertEqual(status, 200, f"{node.node_id} {path} {body!r} -> {status} {data!r}")
        return data

    async def expect(self, ws, mtype: str, **fields):
        msg = await self.recv_json(ws)
        self.assertEqual(msg["type"], mtype, msg)
        for k, v in fields.items():
            self.assertEqual(msg.get(k), v, msg)
        return msg

    async def assert_crosses(self, sender: ServerProcess, receiver: ServerProcess, user="u1"):
        """A send-to-user from `sender` reaches the user's client on `receiver`."""
        ws = await self.join(receiver, user)
        # The receiver subscribes to the user's channel as the client connects, without holding
        # back `connected` for it: a send made at once can still find nobody there (delivered 0,
        # nothing sent), so it is repeated until it reaches the user, for a few seconds at most.
        deadline = time.monotonic() + 5
        while True:
            data = await self.ok(sender, "/api/send-to-user", {"user-id": user, "message": {"type": "hop"}})
            if data != {"delivered": 0} or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        self.assertEqual(data, {"delivered": 1})
        await self.expect(ws, "hop")

    def assert_secret_nowhere(self, secret: str):
        """Not in any node's log, /metrics or health output."""
        for srv in self.nodes:
            self.assertNotIn(secret, srv.log(), srv.node_id)
            self.assertNotIn(ESCAPED, srv.log(), srv.node_id)
            if srv.running():
                self.assertNotIn(secret, srv.metrics_text())
                _, body = srv.health()
                self.assertNotIn(secret, str(body))


class RedisPasswordTest(RedisSecurityTestCase):

    @no_server
    async def test_password_in_the_url_percent_encoded(self):
        redis = self.start_redis(admin_password=PASSWORD)
        url = redis.url_with(":" + ESCAPED)
        a = self.start_node(url, "node-a")
        b = self.start_node(url, "node-b")
        await self.assert_crosses(a, b)
        self.assert_secret_nowhere(PASSWORD)
        # The startup line shows the URL with the password replaced.
        self.assertIn(f"cluster=redis://:***@{HOST}:{redis.port} redis-prefix=rt redis-auth=password", a.log())

    @no_server
    async def test_password_from_a_file_and_from_the_environment(self):
        redis = self.start_redis(admin_password=PASSWORD)
        with tempfile.NamedTemporaryFile("w", suffix=".pw", delete=False) as f:
            f.write(PASSWORD + "\n")  # the trailing newline is not part of the password
        self.addCleanup(os.unlink, f.name)
        a = self.start_node(redis.url_with(), "node-a", ["--redis-password-file", f.name])
        b = self.start_node(redis.url_with(), "node-b", env={"REALTIME_REDIS_PASSWORD": PASSWORD})
        await self.assert_crosses(a, b)
        await self.assert_crosses(b, a, "u2")
        self.assertIn("redis-auth=password (file)", a.log())
        self.assertIn("redis-auth=password (env)", b.log())
        self.assert_secret_nowhere(PASSWORD)

    @no_server
    async def test_the_file_wins_over_the_environment_and_the_url(self):
        redis = self.start_redis(admin_password=PASSWORD)
        with tempfile.NamedTemporaryFile("w", suffix=".pw", delete=False) as f:
            f.write(PASSWORD)
        self.addCleanup(os.unlink, f.name)
        self.start_node(redis.url_with(":wrong-in-url"), "node-a", ["--redis-password-file", f.name],
                        env={"REALTIME_REDIS_PASSWORD": "wrong-in-env"})

    @no_server
    async def test_a_wrong_password_refuses_the_start_without_showing_it(self):
        redis = self.start_redis(admin_password=PASSWORD)
        code, out = self.refused_start(redis.url_with(":not-the-" + ESCAPED), "node-a")
        self.assertEqual(code, 2, out)
        self.assertIn("WRONGPASS", out)
        self.assertNotIn("not-the-", out)
        self.assertNotIn(PASSWORD, out)
        code, out = self.refused_start(redis.url_with(), "node-a")  # no password at all
        self.assertEqual(code, 2, out)
        self.assertIn("NOAUTH", out)


class RedisAclTest(RedisSecurityTestCase):

    def acl_redis(self) -> SecureRedis:
        redis = self.start_redis(admin_password="admin-" + secrets.token_hex(8))
        redis.command("ACL", "SETUSER", "alice", "on", ">" + PASSWORD, "~*", "&*", "+@all")
        # Only the keys and channels of the prefix "rt" (what the broker uses, and nothing else).
        # The smallest user docs/cluster.md suggests.
        redis.command("ACL", "SETUSER", "rtonly", "on", ">" + PASSWORD, "resetkeys", "resetchannels",
                      "~rt:*", "&rt:*", "+@all", "-@admin", "-@dangerous", "+cluster|slots")
        return redis

    @no_server
    async def test_acl_user_in_the_url(self):
        redis = self.acl_redis()
        url = redis.url_with("alice:" + ESCAPED)
        a = self.start_node(url, "node-a")
        b = self.start_node(url, "node-b")
        await self.assert_crosses(a, b)
        self.assertIn(f"cluster=redis://alice:***@{HOST}:{redis.port} redis-prefix=rt redis-auth=user+password",
                      a.log())
        self.assert_secret_nowhere(PASSWORD)

    @no_server
    async def test_user_limited_to_the_prefix_carries_every_route(self):
        """Redis refuses any key or channel outside rt:* to this user (NOPERM), so every route
        working end to end shows that every name the server uses carries the prefix."""
        redis = self.acl_redis()
        url = redis.url_with("rtonly:" + ESCAPED)
        a = self.start_node(url, "node-a")
        b = self.start_node(url, "node-b")
        u1 = await self.join(b, "u1", ["admin"])
        u2 = await self.join(b, "u2")
        reply = await self.command(u2, {"action": "subscribe", "topic": "order:{7}*"})
        self.assertEqual(reply["type"], "subscribed", reply)
        self.assertEqual(await self.ok(a, "/api/send-to-user", {"user-id": "u1", "message": {"type": "u"}}),
                         {"delivered": 1})
        await self.expect(u1, "u")
        self.assertEqual(await self.ok(a, "/api/send-to-role", {"role": "admin", "message": {"type": "r"}}),
                         {"delivered": 1})
        await self.expect(u1, "r")
        self.assertEqual(await self.ok(a, "/api/publish", {"topic": "order:{7}*", "message": {"type": "t"}}),
                         {"delivered": 1})
        await self.expect(u2, "t", topic="order:{7}*")
        self.assertEqual(await self.ok(a, "/api/broadcast", {"message": {"type": "b"}}), {"delivered": 2})
        await self.expect(u1, "b")
        await self.expect(u2, "b")
        self.assertEqual((await self.ok(a, "/api/connections", method="GET"))["count"], 2)
        self.assertEqual(redis.command("EXISTS", "rt:node:node-a"), 1)

    @no_server
    async def test_user_limited_to_another_prefix_is_refused(self):
        redis = self.acl_redis()
        code, out = self.refused_start(redis.url_with("rtonly:" + ESCAPED), "node-a", ["--redis-prefix", "blue"])
        self.assertEqual(code, 2, out)
        self.assertIn("NOPERM", out)
        self.assertNotIn(PASSWORD, out)


class RedisPrefixTest(RedisSecurityTestCase):

    @no_server
    async def test_two_prefixes_on_one_redis_are_isolated(self):
        redis = self.start_redis()
        url = redis.url_with()
        # The same node ids on both: a node id is unique per prefix only.
        blue_a = self.start_node(url, "n1", ["--redis-prefix", "blue"])
        blue_b = self.start_node(url, "n2", ["--redis-prefix", "blue"])
        green_a = self.start_node(url, "n1", ["--redis-prefix", "green"])
        green_b = self.start_node(url, "n2", ["--redis-prefix", "green"])
        on_blue = await self.join(blue_b, "u")
        on_green = await self.join(green_b, "u")
        for ws in (on_blue, on_green):
            self.assertEqual((await self.command(ws, {"action": "subscribe", "topic": "news"}))["type"], "subscribed")

        self.assertEqual(await self.ok(blue_a, "/api/send-to-user", {"user-id": "u", "message": {"type": "x"}}),
                         {"delivered": 1})
        await self.expect(on_blue, "x")
        self.assertEqual(await self.ok(blue_a, "/api/publish", {"topic": "news", "message": {"type": "n"}}),
                         {"delivered": 1})
        await self.expect(on_blue, "n")
        self.assertEqual(await self.ok(blue_a, "/api/broadcast", {"message": {"type": "all"}}), {"delivered": 1})
        await self.expect(on_blue, "all")
        self.assertEqual((await self.ok(blue_a, "/api/connections", method="GET"))["count"], 1)
        # Then green's own message: the first thing green's client sees, so nothing of blue's
        # reached it before.
        self.assertEqual(await self.ok(green_a, "/api/send-to-user", {"user-id": "u", "message": {"type": "g"}}),
                         {"delivered": 1})
        await self.expect(on_green, "g")
        await self.expect_silence(on_blue, 0.3)
        self.assertEqual(sorted(k for k in redis.command("KEYS", "*")),
                         ["blue:node:n1", "blue:node:n2", "green:node:n1", "green:node:n2"])

    @no_server
    async def test_client_strings_cannot_break_framing_or_reach_another_channel(self):
        redis = self.start_redis()
        url = redis.url_with()
        a = self.start_node(url, "node-a")
        b = self.start_node(url, "node-b")
        tricky = "u 1\r\n*3\r\n$7\r\nPUBLISH\r\n{rt}:all"
        target = await self.join(b, tricky)
        prefix_only = await self.join(b, "u 1")  # a prefix of the tricky id
        self.assertEqual(await self.ok(a, "/api/send-to-user", {"user-id": tricky, "message": {"type": "m"}}),
                         {"delivered": 1})
        await self.expect(target, "m")
        topic = "t{x}*:[a]?"
        for ws in (target, prefix_only):
            self.assertEqual((await self.command(ws, {"action": "subscribe", "topic": topic if ws is target else "t"}))
                             ["type"], "subscribed")
        self.assertEqual(await self.ok(a, "/api/publish", {"topic": topic, "message": {"type": "p"}}),
                         {"delivered": 1})
        await self.expect(target, "p", topic=topic)
        await self.expect_silence(prefix_only, 0.3)
        # Redis is still in one piece and the nodes still connected.
        self.assertEqual(redis.command("PING"), "PONG")
        for srv in (a, b):
            self.assertEqual(srv.health()[1].get("redis"), "up")


class NodeIdClaimTest(RedisSecurityTestCase):

    @no_server
    async def test_duplicate_node_id_is_refused_and_free_again_after_a_clean_stop(self):
        redis = self.start_redis()
        url = redis.url_with()
        first = self.start_node(url, "node-a")
        code, out = self.refused_start(url, "node-a")
        self.assertEqual(code, 2, out)
        self.assertIn("node id 'node-a' is in use by another running node on redis prefix 'rt'", out)
        self.assertEqual(first.health()[1].get("redis"), "up")  # the first is undisturbed
        self.assertEqual(first.stop(), 0)
        # A clean stop deletes the claim at once (no waiting for its TTL).
        self.assertEqual(redis.command("EXISTS", "rt:node:node-a"), 0)
        second = self.start_node(url, "node-a")
        self.assertEqual(second.health()[1].get("node-id"), "node-a")

    @no_server
    async def test_the_same_id_on_another_prefix_is_not_a_duplicate(self):
        redis = self.start_redis()
        self.start_node(redis.url_with(), "node-a")
        self.start_node(redis.url_with(), "node-a", ["--redis-prefix", "other"])


@unittest.skipIf(x509 is None, "python3-cryptography is not installed")
class RedisTlsTest(RedisSecurityTestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="rt-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ca = make_ca("Test Redis CA")
        self.ca_file = write_pem(self.dir, "ca.pem", cert=self.ca[1])

    def tls_redis(self, sans=None, **kw) -> SecureRedis:
        sans = sans or [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
        key, cert = make_leaf(self.ca, "redis", sans)
        tag = secrets.token_hex(4)
        files = (write_pem(self.dir, f"server-{tag}.pem", cert=cert), write_pem(self.dir, f"server-{tag}.key", key=key),
                 self.ca_file)
        return self.start_redis(tls=files, **kw)

    @no_server
    async def test_two_nodes_over_tls_with_a_password(self):
        redis = self.tls_redis(admin_password=PASSWORD)
        url = redis.url_with(":" + ESCAPED)
        self.assertTrue(url.startswith("rediss://"))
        a = self.start_node(url, "node-a", ["--redis-tls-ca", self.ca_file])
        b = self.start_node(url, "node-b", ["--redis-tls-ca", self.ca_file])
        await self.assert_crosses(a, b)
        await self.assert_crosses(b, a, "u2")
        self.assertIn(f"redis-tls=verify ({self.ca_file})", a.log())
        self.assert_secret_nowhere(PASSWORD)

    @no_server
    async def test_an_untrusted_certificate_is_refused(self):
        redis = self.tls_redis()
        other_ca = write_pem(self.dir, "other-ca.pem", cert=make_ca("Another CA")[1])
        # Signed by a CA the node was not told to trust; and not in the system's store either.
        for node_id, args in (("node-a", ["--redis-tls-ca", other_ca]), ("node-b", [])):
            srv = self.start_degraded_node(redis.url_with(), node_id, args)
            await self.eventually(lambda: asyncio.to_thread(srv.log), lambda log: "certificate verify failed" in log,
                                  what=f"{node_id} TLS refusal logged")
            status, body = srv.health()
            self.assertEqual((status, body.get("status"), body.get("redis")), (200, "degraded", "down"))

    @no_server
    async def test_a_certificate_for_another_host_is_refused(self):
        redis = self.tls_redis(sans=[x509.DNSName("db.internal.example")], check_hostname=False)
        srv = self.start_degraded_node(redis.url_with(), "node-a", ["--redis-tls-ca", self.ca_file])
        await self.eventually(lambda: asyncio.to_thread(srv.log), lambda log: "certificate verify failed" in log,
                              what="TLS refusal logged")
        self.assertIn("IP address mismatch", srv.log())
        self.assertEqual(srv.health()[1].get("redis"), "down")

    @no_server
    async def test_client_certificate_for_a_redis_that_requires_one(self):
        key, cert = make_leaf(self.ca, "realtime-node", [x509.DNSName("realtime-node")])
        client = (write_pem(self.dir, "client.pem", cert=cert), write_pem(self.dir, "client.key", key=key))
        redis = self.tls_redis(client_cert=client)
        args = ["--redis-tls-ca", self.ca_file, "--redis-tls-cert", client[0], "--redis-tls-key", client[1]]
        a = self.start_node(redis.url_with(), "node-a", args)
        b = self.start_node(redis.url_with(), "node-b", args)
        await self.assert_crosses(a, b)
        # Without the certificate Redis ends the handshake.
        srv = self.start_degraded_node(redis.url_with(), "node-c", ["--redis-tls-ca", self.ca_file])
        await self.eventually(lambda: asyncio.to_thread(srv.log), lambda log: "TLS handshake failed" in log
                              or "closed the connection" in log, what="refusal logged")
        self.assertEqual(srv.health()[1].get("redis"), "down")

    @no_server
    async def test_plain_redis_url_against_a_tls_port_stays_degraded(self):
        redis = self.tls_redis()
        srv = self.start_degraded_node(redis.url_with(scheme="redis"), "node-a")
        await self.eventually(lambda: asyncio.to_thread(srv.log), lambda log: "retrying" in log,
                              what="a failed attempt logged")
        self.assertEqual(srv.health()[1].get("redis"), "down")


@unittest.skipIf(x509 is None, "python3-cryptography is not installed")
class RedisClusterTlsTest(RedisSecurityTestCase):
    """Three TLS-only masters with a password (bus over TLS too), two nodes over
    rediss-cluster:// with a prefix of their own: topics on every shard cross between the nodes."""

    CLI = os.environ.get("REDIS_CLI", "redis-cli")

    def setUp(self):
        super().setUp()
        if shutil.which(self.CLI) is None:
            self.skipTest("redis-cli not found")
        self.dir = tempfile.mkdtemp(prefix="rt-tls-cluster-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        ca = make_ca("Test Redis CA")
        self.ca_file = write_pem(self.dir, "ca.pem", cert=ca[1])
        key, cert = make_leaf(ca, "redis", [x509.IPAddress(ipaddress.ip_address(HOST))])
        files = (write_pem(self.dir, "server.pem", cert=cert), write_pem(self.dir, "server.key", key=key),
                 self.ca_file)
        self.masters = []
        for _ in range(3):
            extra = ["--cluster-enabled", "yes", "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000",
                     "--dir", self.dir, "--tls-cluster", "yes", "--masterauth", PASSWORD]
            m = SecureRedis(extra, admin_password=PASSWORD, tls=files)
            m.extra_args += ["--cluster-config-file", os.path.join(self.dir, f"nodes-{m.port}.conf")]
            self.addCleanup(m.remove_log)
            self.addCleanup(m.stop)
            self.masters.append(m.start())
        r = subprocess.run([self.CLI, "--tls", "--cacert", self.ca_file, "--no-auth-warning", "-a", PASSWORD,
                            "--cluster", "create", *(f"{HOST}:{m.port}" for m in self.masters),
                            "--cluster-replicas", "0", "--cluster-yes"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        deadline = time.monotonic() + 20
        while not all("cluster_state:ok" in m.command("CLUSTER", "INFO") for m in self.masters):
            self.assertLess(time.monotonic(), deadline, "redis cluster not ok within 20s")
            time.sleep(0.1)

    def topic_per_master(self) -> list[str]:
        slots = {(r[0], r[1]): r[2][1] for r in self.masters[0].command("CLUSTER", "SLOTS")}
        found = {}
        for i in range(1000):
            slot = redis_key_slot(f"blue:t:tls-{i}")  # the slot of the prefixed channel
            port = next(p for (first, last), p in slots.items() if first <= slot <= last)
            found.setdefault(port, f"tls-{i}")
        self.assertEqual(len(found), 3)
        return list(found.values())

    @no_server
    async def test_two_nodes_over_a_tls_cluster_with_a_password(self):
        url = "rediss-cluster://:" + ESCAPED + "@" + ",".join(f"{HOST}:{m.port}" for m in self.masters)
        args = ["--redis-tls-ca", self.ca_file, "--redis-prefix", "blue"]
        a = self.start_node(url, "node-a", args)
        b = self.start_node(url, "node-b", args)
        topics = self.topic_per_master()
        ws = await self.join(b, "sub")
        for topic in topics:
            self.assertEqual((await self.command(ws, {"action": "subscribe", "topic": topic}))["type"], "subscribed")
        for topic in topics:
            self.assertEqual(await self.ok(a, "/api/publish", {"topic": topic, "message": {"type": "t"}}),
                             {"delivered": 1})
            await self.expect(ws, "t", topic=topic)
        await self.assert_crosses(b, a, "u2")
        # Each topic's sharded subscription is on the master that owns its prefixed channel.
        for topic in topics:
            counts = [m.command("PUBSUB", "SHARDNUMSUB", f"blue:t:{topic}")[1] for m in self.masters]
            self.assertEqual(sorted(counts), [0, 0, 1], topic)
        self.assert_secret_nowhere(PASSWORD)


class FaultyProxy:
    """A TCP proxy in front of a real Redis whose Redis side misbehaves on demand. Modes:
    "pass"; "hang" (replies are swallowed: a Redis that stopped answering, or stopped mid-reply);
    "garbage" (every reply becomes bytes that are not RESP); "cut" (half of each reply, then the
    connection closes: a drop mid-reply). Requests always reach Redis."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection((HOST, self.upstream_port))
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _pump_up(self, client, upstream):
        try:
            while data := client.recv(65536):
                upstream.sendall(data)
        except OSError:
            pass
        self._close(client, upstream)

    def _pump_down(self, upstream, client):
        try:
            while data := upstream.recv(65536):
                mode = self.mode
                if mode == "pass":
                    client.sendall(data)
                elif mode == "garbage":
                    client.sendall(b"?not resp at all\r\n")
                elif mode == "cut":
                    client.sendall(data[: max(1, len(data) // 2)])
                    break
                # "hang": swallowed
        except OSError:
            pass
        self._close(client, upstream)

    def close(self):
        self.closed = True
        self._close(self.listener)
        with self.lock:
            self._close(*self.sockets)


class FaultyRedisTest(RedisSecurityTestCase):
    """A node whose Redis answers garbage, hangs, or drops mid-reply reports degraded, does not
    crash, and is back in the cluster once Redis behaves."""

    async def misbehave_then_recover(self, mode: str):
        redis = self.start_redis()
        proxy = FaultyProxy(redis.port)
        self.addCleanup(proxy.close)
        a = self.start_node(f"redis://{HOST}:{proxy.port}", "node-a")
        b = self.start_node(redis.url_with(), "node-b")
        await self.assert_crosses(b, a)
        proxy.mode = mode
        # The heartbeat's commands (every second) meet the fault; a hang is noticed after 3 beats.
        await self.eventually(lambda: asyncio.to_thread(a.health), lambda h: h[1].get("status") == "degraded",
                              timeout=10, what=f"node-a degraded under {mode}")
        self.assertEqual(a.health()[1].get("redis"), "down")
        proxy.mode = "pass"
        await self.eventually(lambda: asyncio.to_thread(a.health), lambda h: h[1].get("redis") == "up",
                              timeout=10, what=f"node-a back after {mode}")
        await self.assert_crosses(b, a, "u2")
        await self.assert_crosses(a, b, "u3")
        self.assertTrue(a.running())
        self.assertGreaterEqual(a.metric("realtime_redis_reconnects_total"), 1)

    @no_server
    async def test_garbage_from_redis(self):
        await self.misbehave_then_recover("garbage")

    @no_server
    async def test_redis_hanging(self):
        await self.misbehave_then_recover("hang")

    @no_server
    async def test_redis_dropping_the_connection_mid_reply(self):
        await self.misbehave_then_recover("cut")


if __name__ == "__main__":
    unittest.main()
