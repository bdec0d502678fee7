"""The realtime-server command line: --version, exit status 2 for every command-line mistake,
the `token` subcommand's secret and user id, the API key minimum, configuration from TOML and the
environment (fractional numbers, log-level), and the URLs printed for an IPv6 listen address."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import websockets

from rt_harness import (DEFAULT_TIMEOUT, HERE, SERVER, RealtimeTestCase, ServerProcess, http_request,
                        no_server, random_secret, server_binary_available, verify_jwt)

SECRET = "0123456789abcdef0123456789abcdef"
KEY = "backend-key-0123456789"


def run(*args, env=None, timeout=10):
    full_env = dict(os.environ)
    for name in list(full_env):
        if name.startswith("REALTIME_") and name != "REALTIME_SERVER":
            del full_env[name]  # the caller's configuration must not leak into these runs
    full_env.update(env or {})
    proc = subprocess.run([SERVER, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                          env=full_env)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def project_version() -> str:
    with open(os.path.join(HERE, "..", "..", "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(\s*\S+\s+VERSION\s+([0-9][0-9.]*)", f.read())
    assert m, "CMakeLists.txt has no project VERSION"
    return m.group(1)


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def write_config(test: unittest.TestCase, text: str) -> str:
    """A TOML file holding `text`, removed when `test` ends."""
    fd, path = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    test.addCleanup(os.unlink, path)
    return path


class CliTestCase(unittest.TestCase):
    def setUp(self):
        if not server_binary_available():
            raise unittest.SkipTest(f"server binary not found: {SERVER}")


class VersionAndUsageErrorsTest(CliTestCase):

    def test_version_prints_the_cmake_project_version(self):
        code, out, err = run("--version")
        self.assertEqual(code, 0, err)
        self.assertEqual(out.strip(), f"realtime-server {project_version()}")

    def test_every_command_line_mistake_exits_2_with_a_message(self):
        cases = {
            "unknown flag": ["--no-such-flag"],
            "missing value": ["--port"],
            "unexpected positional": ["extra"],
            "unknown subcommand flag": ["token", "--secret", SECRET, "--user-id", "1", "--bogus"],
            "token without user id": ["token", "--secret", SECRET],
            "ttl out of range": ["token", "--secret", SECRET, "--user-id", "1", "--ttl", "0"],
        }
        for what, args in cases.items():
            with self.subTest(what):
                code, out, err = run(*args)
                self.assertEqual(code, 2, f"{args}: stdout={out!r} stderr={err!r}")
                self.assertTrue(err.startswith("realtime-server: "), err)
                self.assertEqual(out, "")

    def test_bad_option_value_exits_2(self):
        code, _, err = run("--port", "70000", "--jwt-secret", SECRET, "--api-key", KEY)
        self.assertEqual(code, 2)
        self.assertIn("--port", err)


class TokenSubcommandTest(CliTestCase):

    def test_secret_is_read_from_the_environment_when_no_flag_is_given(self):
        code, out, err = run("token", "--user-id", "7", "--roles", "admin", env={"REALTIME_JWT_SECRET": SECRET})
        self.assertEqual(code, 0, err)
        _, claims = verify_jwt(out.strip(), SECRET)
        self.assertEqual(claims["user-id"], "7")
        self.assertEqual(claims["roles"], ["admin"])

    def test_flag_wins_over_the_environment(self):
        other = random_secret(40)
        code, out, err = run("token", "--secret", other, "--user-id", "7", env={"REALTIME_JWT_SECRET": SECRET})
        self.assertEqual(code, 0, err)
        verify_jwt(out.strip(), other)

    def test_no_secret_at_all_is_refused(self):
        code, out, err = run("token", "--user-id", "7")
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertIn("REALTIME_JWT_SECRET", err)

    def test_short_secret_from_the_environment_is_refused(self):
        code, out, _ = run("token", "--user-id", "7", env={"REALTIME_JWT_SECRET": "short"})
        self.assertEqual(code, 2)
        self.assertEqual(out, "")

    def test_empty_user_id_is_refused(self):
        code, out, err = run("token", "--secret", SECRET, "--user-id", "")
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertIn("--user-id", err)


class ApiKeyMinimumTest(CliTestCase):

    def test_api_key_shorter_than_16_bytes_is_refused_at_startup(self):
        code, out, err = run("--port", "0", "--jwt-secret", SECRET, "--api-key", "k" * 15)
        self.assertEqual(code, 2, out)
        self.assertIn("API key must be at least 16 bytes (got 15)", err)
        self.assertNotIn("k" * 15, err + out, "the key must not be logged")

    def test_api_key_from_the_environment_is_checked_too(self):
        code, _, err = run("--port", "0", "--jwt-secret", SECRET, env={"REALTIME_API_KEY": "tiny"})
        self.assertEqual(code, 2)
        self.assertIn("at least 16 bytes", err)

    def test_api_key_of_16_bytes_starts(self):
        srv = ServerProcess(api_key="k" * 16)
        try:
            srv.start()
            status, _, _ = http_request(srv.port, "GET", "/api/connections",
                                        headers={"Authorization": "Bearer " + "k" * 16})
            self.assertEqual(status, 200)
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.remove_log()


class ConfigSourcesTest(RealtimeTestCase):
    """TOML numbers may be fractional; log-level comes from the file or REALTIME_LOG_LEVEL."""

    def write_config(self, text: str) -> str:
        return write_config(self, text)

    async def refused_upgrade_logged_at_debug(self, srv) -> bool:
        status, _, _ = await asyncio.to_thread(http_request, srv.port, "GET", "/ws?token=not-a-jwt", None, {
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        self.assertEqual(status, 401)
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        while time.monotonic() < deadline:
            if "token rejected" in srv.log():  # the debug line; the info line is "upgrade refused"
                return True
            await asyncio.sleep(0.05)
        return False

    @no_server
    async def test_toml_float_and_log_level_are_applied(self):
        path = self.write_config('commands-per-second = 2.5\ncommand-burst = 1.0\nlog-level = "debug"\n')
        self.server = self.start_server(["--config", path])
        self.assertTrue(await self.refused_upgrade_logged_at_debug(self.server), self.server.log())
        # burst 1: of two commands sent together, the second is over the rate
        ws, _ = await self.connect()
        await ws.send('{"action":"ping","ref":1}')
        await ws.send('{"action":"ping","ref":2}')
        replies = [await self.recv_json(ws), await self.recv_json(ws)]
        self.assertEqual([r["type"] for r in replies], ["pong", "error"], replies)
        self.assertEqual(replies[1]["code"], "rate-limited")

    @no_server
    async def test_log_level_from_the_environment(self):
        self.server = self.start_server(env={"REALTIME_LOG_LEVEL": "debug"})
        self.assertTrue(await self.refused_upgrade_logged_at_debug(self.server), self.server.log())

    @no_server
    async def test_default_log_level_hides_debug(self):
        self.server = self.start_server()
        self.assertFalse(await self.refused_upgrade_logged_at_debug(self.server))

    @no_server
    def test_negative_toml_float_is_refused(self):
        path = self.write_config("commands-per-second = -2.5\n")
        code, _, err = run("--config", path, "--port", "0", "--jwt-secret", SECRET, "--api-key", KEY)
        self.assertEqual(code, 2)
        self.assertIn("--commands-per-second", err)

    @no_server
    def test_bad_log_level_in_toml_is_refused(self):
        path = self.write_config('log-level = "loud"\n')
        code, _, err = run("--config", path, "--port", "0", "--jwt-secret", SECRET, "--api-key", KEY)
        self.assertEqual(code, 2)
        self.assertIn("--log-level", err)


class PusherAppConfigTest(RealtimeTestCase):
    """--pusher-app from repeated flags, the environment's comma list and [[pusher-app]] tables;
    every app given is served on /app/<key>, and bad apps stop the server with status 2."""

    def write_config(self, text: str) -> str:
        return write_config(self, text)

    async def assert_serves(self, key: str):
        url = f"ws://127.0.0.1:{self.server.port}/app/{key}?protocol=7&client=test&version=1"
        async with websockets.connect(url) as ws:
            frame = json.loads(await asyncio.wait_for(ws.recv(), DEFAULT_TIMEOUT))
            self.assertEqual(frame["event"], "pusher:connection_established", frame)
            self.assertRegex(json.loads(frame["data"])["socket_id"], r"^\d+\.\d+$")

    async def assert_refuses(self, key: str):
        url = f"ws://127.0.0.1:{self.server.port}/app/{key}?protocol=7"
        async with websockets.connect(url) as ws:
            frame = json.loads(await asyncio.wait_for(ws.recv(), DEFAULT_TIMEOUT))
            self.assertEqual(frame["event"], "pusher:error", frame)
            self.assertEqual(json.loads(frame["data"])["code"], 4001)

    @no_server
    async def test_repeated_flags(self):
        self.server = self.start_server(["--pusher-app", "1:key-one:secret-one", "--pusher-app", "2:key-two:secret-two"])
        await self.assert_serves("key-one")
        await self.assert_serves("key-two")
        await self.assert_refuses("key-three")
        self.assertIn("pusher-apps=1,2", self.server.log())
        self.assertNotIn("secret-one", self.server.log())

    @no_server
    async def test_environment_comma_list(self):
        self.server = self.start_server(env={"REALTIME_PUSHER_APP": "1:key-one:secret-one,2:key-two:secret-two"})
        await self.assert_serves("key-one")
        await self.assert_serves("key-two")

    @no_server
    async def test_toml_array_of_tables(self):
        path = self.write_config('[[pusher-app]]\nid = "1"\nkey = "key-one"\nsecret = "secret-one"\n\n'
                                 '[[pusher-app]]\nid = "2"\nkey = "key-two"\nsecret = "secret-two"\n'
                                 'webhook = "http://127.0.0.1:9/hooks"\n')
        self.server = self.start_server(["--config", path])
        await self.assert_serves("key-one")
        await self.assert_serves("key-two")

    @no_server
    def test_bad_apps_stop_the_server_without_showing_the_secret(self):
        cases = [
            (["--pusher-app", "1:key-only"], "expected id:key:secret"),
            (["--pusher-app", "1:k:short"], "secret must be"),
            (["--pusher-app", "1:k:secret-one", "--pusher-app", "1:k2:secret-two"], "two apps have the id"),
            (["--pusher-app", "1:k:secret-one", "--pusher-app", "2:k:secret-two"], "the same key"),
            (["--pusher-app", "1:k:secret-one,2:k2:secret-two"], "one id:key:secret per flag"),
        ]
        for args, why in cases:
            with self.subTest(args=args):
                code, _, err = run(*args, "--port", "0", "--jwt-secret", SECRET, "--api-key", KEY)
                self.assertEqual(code, 2, err)
                self.assertIn("--pusher-app", err)
                self.assertIn(why, err)
                self.assertNotIn("secret-one", err)
        code, _, err = run("--pusher-app", "1:k:secret-one:ftp://example.com/", "--port", "0", "--jwt-secret", SECRET,
                           "--api-key", KEY)
        self.assertEqual(code, 2, err)
        self.assertIn("webhook", err)
        path = self.write_config('[[pusher-app]]\nid = "1"\nkey = "k"\nsecret = "secret-one"\nurl = "x"\n')
        code, _, err = run("--config", path, "--port", "0", "--jwt-secret", SECRET, "--api-key", KEY)
        self.assertEqual(code, 2, err)
        self.assertIn("pusher-app", err)


class Ipv6ListenAddressTest(CliTestCase):

    def test_printed_urls_bracket_the_ipv6_literal_and_a_client_connects(self):
        if not ipv6_loopback_available():
            raise unittest.SkipTest("no IPv6 loopback on this machine")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REALTIME_")}
        proc = subprocess.Popen([SERVER, "--host", "::1", "--port", "0", "--threads", "1"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l.decode("utf-8", "replace")) for l in proc.stdout],
                         daemon=True).start()
        try:
            seen = []
            deadline = time.monotonic() + 10
            while not any("Health" in l for l in seen) and time.monotonic() < deadline:
                try:
                    seen.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
                except queue.Empty:
                    break
            out = "".join(seen)
            m = re.search(r"listening on \[::1\]:(\d+) ", out)
            self.assertIsNotNone(m, out)
            port = m.group(1)
            self.assertIn(f"Connect    : ws://[::1]:{port}/ws?token=<token>", out)
            self.assertIn(f"curl -s -X POST http://[::1]:{port}/api/broadcast", out)
            self.assertIn(f"Health     : http://[::1]:{port}/health/realtime", out)
            # Dev mode tracks presence on the demo topics the page uses.
            self.assertIn("Presence   : who subscribes to demo:** is listed and announced (--presence)", out)
            self.assertNotIn(":::", out)
            token = re.search(r"Sample token[^\n]*\n\s+(\S+)", out).group(1)
            url = re.search(r"Connect\s+: (\S+)", out).group(1).replace("<token>", token)

            async def connect():
                async with websockets.connect(url, open_timeout=DEFAULT_TIMEOUT) as ws:
                    first = await asyncio.wait_for(ws.recv(), DEFAULT_TIMEOUT)
                    await ws.send('{"action":"subscribe","topic":"demo:room"}')
                    replies = [json.loads(await asyncio.wait_for(ws.recv(), DEFAULT_TIMEOUT)) for _ in range(2)]
                    self.assertEqual([r["type"] for r in replies], ["subscribed", "presence-join"], replies)
                    self.assertEqual(replies[1]["user-id"], "dev-user")
                    return first

            first = asyncio.run(connect())
            self.assertIn('"type":"connected"', first)
            self.assertIn('"user-id":"dev-user"', first)
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(timeout=10), 0)
            proc.stdout.close()


if __name__ == "__main__":
    unittest.main()
