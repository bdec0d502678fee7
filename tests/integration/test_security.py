"""Attacks from docs/security.md, against the real server over raw sockets: forged and odd
tokens, HTTP request smuggling and limits, hostile JSON, WebSocket framing violations,
authorization look-alikes, and descriptor exhaustion at accept. Each test names the attack it
tries; the table in docs/security.md points here."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import resource
import socket
import threading
import time
import unicodedata
import unittest
import urllib.parse

from rt_harness import (HOST, OP_CLOSE, OP_CONT, OP_TEXT, RealtimeTestCase, ServerProcess,
                        b64url, b64url_decode, encode_frame, make_jwt, server_args)

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    HAVE_CRYPTOGRAPHY = True
except ImportError:  # Debian: python3-cryptography (scripts/install-deps.sh)
    HAVE_CRYPTOGRAPHY = False

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def signed(header_json: bytes, payload_json: bytes, secret: str) -> str:
    """HS256 over exactly these header and payload bytes (for duplicate keys and the like)."""
    signing_input = b64url(header_json) + "." + b64url(payload_json)
    return signing_input + "." + b64url(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())


def upgrade_head(target: str, headers: dict | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {target} HTTP/1.1", f"Host: {HOST}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int | None, bytes, bytes]:
    """(status, head, body) of one HTTP response; the body by Content-Length (none for 101)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    status = int(m.group(1)) if m else None
    cl = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    n = int(cl.group(1)) if cl and status != 101 else 0
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, head, rest[:n] if n else rest


def exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[int | None, bytes, bytes]:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock, timeout)


def upgrade_status(port: int, token: str | None, headers: dict | None = None, extra_query: str = "") -> int | None:
    target = "/ws" + (f"?token={urllib.parse.quote(token, safe='')}" if token is not None else "")
    if extra_query:
        target += ("&" if "?" in target else "?") + extra_query
    return exchange(port, upgrade_head(target, headers))[0]


def responses_in(data: bytes) -> int:
    return len(re.findall(rb"HTTP/1\.[01] \d{3} ", data))


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (or the deadline)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


class Listener:
    """A loopback TCP listener that counts who connects (for URLs a token must never make the
    server fetch)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


class JwtAttackTest(RealtimeTestCase):
    """HS256 server (the harness default)."""

    def claims(self, **extra):
        c = {"sub": "42", "exp": int(time.time()) + 3600}
        c.update(extra)
        return c

    def status(self, token, **kw):
        return upgrade_status(self.port, token, **kw)

    async def test_alg_none_in_any_spelling_is_401(self):
        for alg in ["none", "None", "NONE", "nOnE", ""]:
            for sig in ["", None]:  # no signature, or an HMAC one under the none header
                with self.subTest(alg=alg, signature=sig):
                    token = make_jwt(self.claims(), self.server.jwt_secret, alg=alg, signature=sig)
                    self.assertEqual(await asyncio.to_thread(self.status, token), 401)
        no_alg = b64url(b'{"typ":"JWT"}') + "." + b64url(compact(self.claims())) + "."
        self.assertEqual(await asyncio.to_thread(self.status, no_alg), 401)
        self.assertEqual(await asyncio.to_thread(self.status, self.token()), 101)

    async def test_crit_header_is_401_even_when_signed(self):
        for crit in [["exp"], ["b64"], ["x-unknown"], []]:
            with self.subTest(crit=crit):
                token = make_jwt(self.claims(), self.server.jwt_secret, header={"crit": crit, "x-unknown": 1})
                self.assertEqual(await asyncio.to_thread(self.status, token), 401)

    async def test_kid_is_ignored_and_jku_x5u_are_never_fetched(self):
        listener = Listener()
        self.addCleanup(listener.close)
        url = f"http://{HOST}:{listener.port}/keys"
        header = {"kid": "../../../../dev/null", "jku": url, "x5u": url}
        # Signed with the server's secret: the fixed key decides, the headers change nothing.
        good = make_jwt(self.claims(), self.server.jwt_secret, header=header)
        self.assertEqual(await asyncio.to_thread(self.status, good), 101)
        # Signed with a key the attacker "publishes" at jku/x5u, or with an empty key (kid
        # pointing at /dev/null): refused.
        for key in ["attacker-secret-attacker-secret-0123", ""]:
            forged = make_jwt(self.claims(), key, header=header)
            self.assertEqual(await asyncio.to_thread(self.status, forged), 401)
        await asyncio.sleep(0.3)  # a fetch in the background would have connected by now
        self.assertEqual(listener.accepted, 0, "the server fetched a URL named by a token")

    async def test_key_twice_in_header_or_payload_is_401_even_when_signed(self):
        secret = self.server.jwt_secret
        exp = int(time.time()) + 3600
        cases = {
            "alg twice": (b'{"alg":"none","alg":"HS256","typ":"JWT"}', compact({"sub": "42", "exp": exp})),
            "alg twice, escaped": (b'{"alg":"HS256","\\u0061lg":"HS256"}', compact({"sub": "42", "exp": exp})),
            "sub twice": (b'{"alg":"HS256"}', f'{{"sub":"42","exp":{exp},"sub":"admin"}}'.encode()),
            "roles twice": (b'{"alg":"HS256"}', f'{{"sub":"42","roles":[],"exp":{exp},"roles":["admin"]}}'.encode()),
            "exp twice": (b'{"alg":"HS256"}', f'{{"sub":"42","exp":1,"exp":{exp}}}'.encode()),
        }
        for name, (header, payload) in cases.items():
            with self.subTest(case=name):
                self.assertEqual(await asyncio.to_thread(self.status, signed(header, payload, secret)), 401)
        control = signed(b'{"alg":"HS256"}', compact({"sub": "42", "exp": exp}), secret)
        self.assertEqual(await asyncio.to_thread(self.status, control), 101)

    async def test_time_claims_of_the_wrong_type_are_401(self):
        for claim in ["exp", "nbf", "iat"]:
            for value in [str(int(time.time()) + 3600), True, None, [1], {"t": 1}]:
                with self.subTest(claim=claim, value=value):
                    c = self.claims()
                    c[claim] = value
                    token = make_jwt(c, self.server.jwt_secret)
                    self.assertEqual(await asyncio.to_thread(self.status, token), 401)

    async def test_time_claims_floats_negative_and_huge(self):
        now = time.time()
        cases = [
            ({"exp": now + 3600.5}, 101), ({"exp": now - 2.5}, 401), ({"exp": -1}, 401),
            ({"exp": -1e300}, 401), ({"exp": 1e300}, 101), ({"exp": 2 ** 63}, 101), ({"exp": 2 ** 64}, 101),
            ({"nbf": now - 2.5}, 101), ({"nbf": -1}, 101), ({"nbf": 1e300}, 401), ({"nbf": 2 ** 63}, 401),
            ({"iat": -5}, 101), ({"iat": 1e300}, 101), ({"iat": 2 ** 64}, 101),
        ]
        for extra, expected in cases:
            with self.subTest(claims=extra):
                c = {"sub": "42"}
                c.update(extra)
                self.assertEqual(await asyncio.to_thread(self.status, make_jwt(c, self.server.jwt_secret)), expected)

    async def test_non_canonical_base64url_is_401(self):
        # A token whose signature has '-' or '_' (so that '+'/'/' spellings exist) and whose
        # last character has unused low bits (32 bytes = 43 characters: 4 spare bits).
        for n in range(1000):
            token = make_jwt(self.claims(n=n), self.server.jwt_secret)
            if "-" in token.split(".")[2] or "_" in token.split(".")[2]:
                break
        self.assertEqual(await asyncio.to_thread(self.status, token), 101)
        h, p, s = token.split(".")
        last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(s[-1])
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        variants = {
            "padded signature": f"{h}.{p}.{s}=",
            "padded header": f"{h}=.{p}.{s}" if len(h) % 4 else f"{h}====.{p}.{s}",
            "standard alphabet": f"{h}.{p}." + s.replace("-", "+").replace("_", "/"),
            "trailing bits set": f"{h}.{p}.{s[:-1]}{alphabet[last | 1]}" if not last & 1 else f"{h}.{p}.{s[:-1]}{alphabet[last & ~1]}",
            "space inside": f"{h}.{p}.{s[:10]} {s[10:]}",
        }
        self.assertEqual(b64url_decode(variants["trailing bits set"].split(".")[2].rstrip("=")),
                         b64url_decode(s), "the variant must decode to the same bytes")
        for name, bad in variants.items():
            with self.subTest(case=name):
                self.assertNotEqual(bad, token)
                self.assertEqual(await asyncio.to_thread(self.status, bad), 401)

    async def test_oversized_token_is_401_at_one_byte_over_8_kib(self):
        def token_of_size(size):
            # Base64 cannot make every length from the payload alone: vary a header field too.
            base = make_jwt(self.claims(pad=""), self.server.jwt_secret)
            for kid in range(4):
                guess = (size - len(base)) * 3 // 4  # base64 makes 4 characters of 3 bytes
                for extra in range(guess - 12, guess + 6):
                    t = make_jwt(self.claims(pad="x" * max(0, extra)), self.server.jwt_secret,
                                 header={"kid": "k" * kid})
                    if len(t) == size:
                        return t
            self.fail(f"no token of {size} bytes")

        self.assertEqual(await asyncio.to_thread(self.status, token_of_size(8192)), 101)
        self.assertEqual(await asyncio.to_thread(self.status, token_of_size(8193)), 401)
        # Past the 16 KiB header limit the request itself is refused, before any decoding.
        huge = make_jwt(self.claims(pad="x" * 20000), self.server.jwt_secret)
        self.assertEqual(await asyncio.to_thread(self.status, huge), 431)

    async def test_token_in_query_and_header_is_400(self):
        token = self.token()
        status = await asyncio.to_thread(self.status, token, headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(status, 400)
        other = self.token("7")
        status = await asyncio.to_thread(self.status, token, headers={"Authorization": f"Bearer {other}"})
        self.assertEqual(status, 400)
        status = await asyncio.to_thread(self.status, token, extra_query=f"token={other}")
        self.assertEqual(status, 400)
        # A Basic header the browser repeats for the page is not a second token.
        status = await asyncio.to_thread(self.status, token, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        self.assertEqual(status, 101)


@unittest.skipUnless(HAVE_CRYPTOGRAPHY, "python3-cryptography is not installed")
class PublicKeyAttackTest(RealtimeTestCase):
    """Servers configured with --jwt-public-key (RSA or P-256)."""

    def setUp(self):
        self.server = None  # each test starts its own, with its key

    def start_with_key(self, private_key):
        pem = private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        path = os.path.join(self.tmpdir(), "key.pem")
        with open(path, "wb") as f:
            f.write(pem)
        srv = ServerProcess(["--jwt-public-key", path])
        i = srv.args.index("--jwt-secret")
        del srv.args[i:i + 2]
        self.addCleanup(self._stop_server, srv, 0)
        self.server = srv.start()
        return pem

    def tmpdir(self):
        import tempfile
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        return d.name

    @staticmethod
    def input_of(alg, claims):
        return b64url(compact({"alg": alg, "typ": "JWT"})) + "." + b64url(compact(claims))

    def claims(self):
        return {"sub": "42", "exp": int(time.time()) + 3600}

    def status(self, token):
        return upgrade_status(self.port, token)

    async def alg_confusion(self, key, good_alg, sign):
        pem = await asyncio.to_thread(self.start_with_key, key)
        for secret in [pem, pem.strip()]:
            for alg in ["HS256", "HS384", "HS512"]:
                forged = make_jwt(self.claims(), secret, alg=alg)
                self.assertEqual(await asyncio.to_thread(self.status, forged), 401, alg)
        si = self.input_of(good_alg, self.claims())
        self.assertEqual(await asyncio.to_thread(self.status, si + "." + b64url(sign(si.encode()))), 101)

    async def test_alg_confusion_hmac_keyed_with_the_rsa_public_key_pem_is_401(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        await self.alg_confusion(key, "RS256", lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256()))

    async def test_alg_confusion_hmac_keyed_with_the_ec_public_key_pem_is_401(self):
        key = ec.generate_private_key(ec.SECP256R1())

        def sign(data):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        await self.alg_confusion(key, "ES256", sign)

    async def test_ecdsa_der_signature_is_401_raw_and_its_high_s_twin_connect(self):
        key = ec.generate_private_key(ec.SECP256R1())
        await asyncio.to_thread(self.start_with_key, key)
        si = self.input_of("ES256", self.claims())
        der = key.sign(si.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        twin = r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big")
        self.assertEqual(await asyncio.to_thread(self.status, si + "." + b64url(der)), 401)
        self.assertEqual(await asyncio.to_thread(self.status, si + "." + b64url(raw)), 101)
        # Documented choice (docs/security.md): high S is accepted, as RFC 7518 allows.
        self.assertEqual(await asyncio.to_thread(self.status, si + "." + b64url(twin)), 101)
        self.assertEqual(await asyncio.to_thread(self.status, si + "." + b64url(raw[:63])), 401)


class HttpAttackTest(RealtimeTestCase):

    def api_head(self, path="/api/broadcast", extra=()):
        lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}", f"Authorization: Bearer {self.server.api_key}",
                 "Content-Type: application/json", *extra]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def test_content_length_with_transfer_encoding_is_refused_without_smuggling(self):
        body = b'{"message":{"type":"a"}}'
        smuggled = b"GET /api/connections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " \
                   + self.server.api_key.encode() + b"\r\n\r\n"
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        for te in ["chunked", "Chunked", " chunked", "chunked, identity"]:
            with self.subTest(transfer_encoding=te):
                head = self.api_head(extra=[f"Content-Length: {len(chunked)}", f"Transfer-Encoding: {te}"])

                def run():
                    with socket.create_connection((HOST, self.port), timeout=5) as sock:
                        sock.sendall(head + chunked + smuggled)
                        return read_all(sock, 2.0)

                data = await asyncio.to_thread(run)
                self.assertRegex(data, rb"^HTTP/1\.1 400 ", data[:200])
                self.assertEqual(responses_in(data), 1, f"a second request was answered: {data!r}")

    async def test_conflicting_or_malformed_content_length_is_400(self):
        body = b'{"message":{"type":"a"}}'
        for values in [(len(body), len(body) + 5), (f"{len(body)}, {len(body) + 5}",), (f"+{len(body)}",),
                       (f"{len(body)}x",), ("-1",), ("0x18",), ("99999999999999999999999",)]:
            with self.subTest(content_length=values):
                head = self.api_head(extra=[f"Content-Length: {v}" for v in values])
                status, _, _ = await asyncio.to_thread(exchange, self.port, head + body + b"junk")
                self.assertEqual(status, 400)
        # The same length twice means one length (RFC 9110 §8.6 lets a recipient merge them):
        # no two readings of the body, so no smuggling; the request is served.
        for values in [(len(body), len(body)), (f"{len(body)}, {len(body)}",)]:
            with self.subTest(content_length=values):
                head = self.api_head(extra=[f"Content-Length: {v}" for v in values])
                status, _, resp = await asyncio.to_thread(exchange, self.port, head + body)
                self.assertEqual((status, json.loads(resp)), (200, {"delivered": 0}))

    async def test_chunked_bodies_are_read_correctly_and_bounded(self):
        body = b'{"message":{"type":"chunked"}}'
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
        head = self.api_head(extra=["Transfer-Encoding: chunked"])
        status, _, resp = await asyncio.to_thread(exchange, self.port, head + chunked + b"0\r\n\r\n")
        self.assertEqual(status, 200, resp)
        self.assertEqual(json.loads(resp), {"delivered": 0})
        # Over the 1 MiB body limit in chunks: 413, without reading it all.
        big = b"".join(b"10000\r\n" + b" " * 0x10000 + b"\r\n" for _ in range(20))
        status, _, _ = await asyncio.to_thread(exchange, self.port, head + big + b"0\r\n\r\n")
        self.assertEqual(status, 413)
        for bad in [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n", b"-1\r\n\r\n",
                    b"ffffffffffffffffff\r\n"]:
            with self.subTest(chunks=bad):
                status, _, _ = await asyncio.to_thread(exchange, self.port, head + bad)
                self.assertEqual(status, 400)

    async def test_header_count_and_size_are_bounded(self):
        many = [f"X-H{i}: {i}" for i in range(1000)]  # about 12 KiB: under the 16 KiB limit
        status, _, _ = await asyncio.to_thread(exchange, self.port, self.api_head("/api/connections", many)
                                               .replace(b"POST", b"GET", 1))
        self.assertEqual(status, 200)
        too_many = [f"X-H{i}: {i}" for i in range(3000)]
        status, _, _ = await asyncio.to_thread(exchange, self.port, self.api_head("/api/connections", too_many)
                                               .replace(b"POST", b"GET", 1))
        self.assertEqual(status, 431)
        status, _, _ = await asyncio.to_thread(exchange, self.port, self.api_head("/api/connections", ["X-Big: " + "a" * 20000])
                                               .replace(b"POST", b"GET", 1))
        self.assertEqual(status, 431)
        self.assertEqual((await self.api("GET", "/health/realtime", key=None))[0], 200)

    async def test_a_request_trickled_a_byte_at_a_time_still_upgrades_within_the_timeout(self):
        head = upgrade_head("/ws?token=" + self.token())

        def trickle():
            with socket.create_connection((HOST, self.port), timeout=5) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for b in head:
                    sock.sendall(bytes([b]))
                    time.sleep(0.002)
                status, _, rest = read_response(sock)
                while b"connected" not in rest:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    rest += chunk
                return status, rest

        status, rest = await asyncio.to_thread(trickle)
        self.assertEqual(status, 101)
        self.assertIn(b'"type":"connected"', rest)

    async def test_deep_nesting_is_refused_in_api_bodies_and_commands(self):
        status, body = await self.api("POST", "/api/broadcast", "[" * 100_000)
        self.assertEqual((status, body), (400, {"error": "body is not valid JSON"}))
        status, body = await self.api("POST", "/api/broadcast",
                                      '{"message":{"type":"t","x":' + "[" * 100_000 + "]" * 100_000 + "}}")
        self.assertEqual(status, 400)
        ws, _ = await self.connect()
        reply = await self.command(ws, "[" * 60_000)
        self.assertEqual((reply["type"], reply["code"]), ("error", "bad-request"), reply)
        reply = await self.command(ws, '{"action":"ping","ref":' + "{\"a\":" * 10_000 + "1" + "}" * 10_000 + "}")
        self.assertEqual((reply["type"], reply["code"]), ("error", "bad-request"), reply)
        await self.assert_ping_works(ws)

    async def test_a_key_twice_is_refused_in_api_bodies_and_commands(self):
        ws, _ = await self.connect(user_id="7")
        status, body = await self.api("POST", "/api/send-to-user",
                                      '{"user-id":"7","message":{"type":"a"},"user-id":"8"}')
        self.assertEqual((status, body), (400, {"error": "body has a key twice"}))
        # No ref in the reply: a text with a key twice has no one meaning to take it from.
        reply = await self.command(ws, '{"action":"subscribe","topic":"chat:1","topic":"user:8","ref":1}')
        self.assertEqual((reply["type"], reply["code"], reply.get("ref")), ("error", "bad-request", None), reply)
        reply = await self.command(ws, '{"action":"subscribe","topic":"user:8","topic":"user:7"}')
        self.assertEqual((reply["type"], reply["code"]), ("error", "bad-request"), reply)
        await self.assert_ping_works(ws)

    async def test_numbers_and_unicode_edge_cases(self):
        ws, _ = await self.connect(user_id="7")
        raw = ('{"user-id":"7","message":{"type":"n","neg0":-0,"negf":-0.0,"big":18446744073709551616,'
               '"small":-9223372036854775809,"nul":"a\\u0000b","pair":"\\ud83d\\ude00","e":1e308}}')
        self.assertEqual((await self.api("POST", "/api/send-to-user", raw))[0], 200)
        msg = await self.recv_json(ws)
        self.assertEqual(msg["nul"], "a\x00b")
        self.assertEqual(msg["pair"], "\U0001F600")
        self.assertEqual(msg["big"], 18446744073709551616.0)
        self.assertEqual(msg["neg0"], 0)
        self.assertEqual(msg["e"], 1e308)
        for bad in ['{"user-id":"7","message":{"type":"n","x":1e400}}',
                    '{"user-id":"7","message":{"type":"n","x":-1e400}}',
                    '{"user-id":"7","message":{"type":"\\ud800"}}',
                    '{"user-id":"7","message":{"type":"\\udc00\\ud800"}}',
                    b'{"user-id":"7","message":{"type":"\xc0\xae"}}',
                    b'{"user-id":"7","message":{"type":"\xed\xa0\x80"}}',
                    '{"topic":"a\\u0000b","message":{"type":"n"}}']:
            with self.subTest(body=bad):
                path = "/api/publish" if "topic" in str(bad) else "/api/send-to-user"
                self.assertEqual((await self.api("POST", path, bad))[0], 400)
        for topic_json in ['"a\\u0000b"', '"user:7\\u0000"', '"user:7 "', '"user:7\\u00a0"', '"x\\u2028"']:
            with self.subTest(topic=topic_json):
                reply = await self.command(ws, f'{{"action":"subscribe","topic":{topic_json}}}')
                self.assertEqual(reply.get("code"), "invalid-topic", reply)
        reply = await self.command(ws, '{"action":"subscribe","topic":"\\ud800"}')
        self.assertEqual(reply.get("code"), "bad-request", reply)
        await self.assert_ping_works(ws)


class FramingAttackTest(RealtimeTestCase):

    async def close_code_after(self, data: bytes) -> int | None:
        raw = self.raw()
        await asyncio.to_thread(raw.recv_json)  # connected
        raw.send_raw(data)
        end = await asyncio.to_thread(raw.read_until_end, 5)
        self.assertTrue(end["close_frame"], f"no close frame: {end}")
        return end["close_code"]

    async def test_invalid_close_codes_and_one_byte_close_payload_close_1002(self):
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]:
            with self.subTest(code=code):
                self.assertEqual(await self.close_code_after(encode_frame(OP_CLOSE, code.to_bytes(2, "big"))), 1002)
        self.assertEqual(await self.close_code_after(encode_frame(OP_CLOSE, b"\x03")), 1002)
        # Receivable codes are answered normally (not 1002).
        for code in [1000, 3000, 4999]:
            with self.subTest(code=code):
                self.assertNotEqual(await self.close_code_after(encode_frame(OP_CLOSE, code.to_bytes(2, "big"))), 1002)

    async def test_sixty_four_bit_length_with_the_top_bit_closes_1002(self):
        head = bytes([0x81, 0x80 | 127]) + (1 << 63 | 5).to_bytes(8, "big") + os.urandom(4)
        self.assertEqual(await self.close_code_after(head + b"hello"), 1002)

    async def test_invalid_utf8_split_across_fragments_closes_1007(self):
        cases = {
            "surrogate split": (b'{"a":"\xed', b'\xa0\x80"}'),
            "overlong split": (b'{"a":"\xe0', b'\x80\xaf"}'),
            "above U+10FFFF split": (b'{"a":"\xf4', b'\x90\x80\x80"}'),
            "bad continuation": (b'{"a":"\xf0\x9f', b'\x28\x8c"}'),
            "truncated at the end": (b'{"a":"x"}', b"\xe2\x82"),
        }
        for name, (first, second) in cases.items():
            with self.subTest(case=name):
                data = encode_frame(OP_TEXT, first, fin=False) + encode_frame(OP_CONT, second)
                self.assertEqual(await self.close_code_after(data), 1007)

    async def test_rsv1_without_negotiated_compression_closes_1002(self):
        # No extension is ever negotiated, even when offered.
        raw = self.raw(headers={"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"})
        await asyncio.to_thread(raw.recv_json)
        raw.send_raw(encode_frame(OP_TEXT, b'{"action":"ping"}', rsv=4))
        end = await asyncio.to_thread(raw.read_until_end, 5)
        self.assertEqual(end["close_code"], 1002)


class AuthorizationAttackTest(RealtimeTestCase):

    async def expect(self, ws, topic, code):
        reply = await self.command(ws, {"action": "subscribe", "topic": topic})
        if code is None:
            self.assertEqual(reply["type"], "subscribed", (topic, reply))
        else:
            self.assertEqual(reply.get("code"), code, (topic, reply))

    async def test_user_and_role_topics_do_not_match_look_alikes(self):
        nfc, nfd = unicodedata.normalize("NFC", "é"), unicodedata.normalize("NFD", "é")
        self.assertNotEqual(nfc, nfd)
        ws_nfd, hello = await self.connect(user_id=nfd, roles=["admin"])
        self.assertEqual(hello["user-id"], nfd)
        await self.expect(ws_nfd, f"user:{nfd}", None)
        await self.expect(ws_nfd, f"user:{nfc}", "forbidden")
        await self.expect(ws_nfd, f"user:{nfc}:inbox", "forbidden")
        ws_alice, _ = await self.connect(user_id="alice", roles=["admin"])
        for topic in ["user:Alice", "user:ALICE", "user:alic", "user:alicex", "user:alice\u200b",
                      "role:Admin", "role:ADMIN", "role:admin\u200b", "role:admins", "role:adm",
                      f"role:{unicodedata.normalize('NFKC', 'ａｄｍｉｎ')}x", "role:ａｄｍｉｎ", "user:ａlice"]:
            await self.expect(ws_alice, topic, "forbidden")
        for topic in ["user:alice\x00", "user:alice ", "user:alice\t", "user:alice\u00a0", "role:admin\u3000"]:
            await self.expect(ws_alice, topic, "invalid-topic")
        await self.expect(ws_alice, "user:alice", None)
        await self.expect(ws_alice, "role:admin:ops", None)

    async def test_connection_ids_are_random_v4_uuids(self):
        ids = []
        for _ in range(40):
            ws, hello = await self.connect()
            ids.append(hello["connection-id"])
            await ws.close()
        self.assertEqual(len(set(ids)), len(ids))
        for cid in ids:
            self.assertRegex(cid, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        # 122 random bits each: no two share a leading 32-bit group, and every hex digit shows up.
        self.assertEqual(len({cid[:8] for cid in ids}), len(ids))
        self.assertEqual(set("".join(c.replace("-", "") for c in ids)), set("0123456789abcdef"))

    async def test_a_client_cannot_act_on_another_connections_id(self):
        victim, hello = await self.connect(user_id="victim")
        victim_id = hello["connection-id"]
        attacker, _ = await self.connect(user_id="attacker")
        for cmd in [{"action": "subscribe", "topic": "trap:1", "connection-id": victim_id},
                    {"action": "unsubscribe", "topic": "own:1", "connection-id": victim_id}]:
            await self.command(attacker, cmd)
        self.assertEqual((await self.command(victim, {"action": "subscribe", "topic": "own:1"}))["type"], "subscribed")
        await self.command(attacker, {"action": "unsubscribe", "topic": "own:1", "connection-id": victim_id})
        # The victim is still on own:1 and was never put on trap:1.
        self.assertEqual(await self.api_ok("POST", "/api/publish", {"topic": "own:1", "message": {"type": "m"}}),
                         {"delivered": 1})
        self.assertEqual((await self.recv_json(victim))["type"], "m")
        self.assertEqual(await self.api_ok("POST", "/api/publish", {"topic": "trap:1", "message": {"type": "m"}}),
                         {"delivered": 1})  # the attacker itself
        await self.expect_silence(victim)


class AcceptExhaustionTest(RealtimeTestCase):

    @staticmethod
    def open_fds(pid):
        return len(os.listdir(f"/proc/{pid}/fd"))

    @staticmethod
    def cpu_seconds(pid):
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def test_descriptor_exhaustion_at_accept_neither_spins_nor_crashes(self):
        pid = self.server.proc.pid
        limit = self.open_fds(pid) + 8
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        socks = []
        try:
            for _ in range(40):  # past the limit: the kernel queues them, accept fails with EMFILE
                socks.append(socket.create_connection((HOST, self.port), timeout=5))
            await self.eventually(lambda: asyncio.to_thread(self.open_fds, pid), lambda n: n >= limit,
                                  what="the server at its descriptor limit")
            before = self.cpu_seconds(pid)
            await asyncio.sleep(1.0)
            used = self.cpu_seconds(pid) - before
            # A spinning accept loop burns a whole core (1 s per second); the backoff uses ~none.
            self.assertLess(used, 0.5, f"{used:.2f}s of CPU in 1s while accept fails")
            self.assertTrue(self.server.running())
        finally:
            for s in socks:
                s.close()
        # Descriptors freed: the server accepts again, and counted the failures.
        await self.eventually(lambda: asyncio.to_thread(self.open_fds, pid), lambda n: n < limit - 4,
                              what="descriptors freed")
        errors = await self.eventually(lambda: self.metric("realtime_accept_errors_total"),
                                       lambda v: v is not None and v >= 1, what="accept errors counted")
        self.assertGreaterEqual(errors, 1)
        ws, _ = await self.connect()
        await self.assert_ping_works(ws)


if __name__ == "__main__":
    unittest.main()
