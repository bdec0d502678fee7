"""The package as a user installs it: `pip install --no-build-isolation` of clients/python into a
fresh venv (Debian's python3 with --system-site-packages, no index: nothing is downloaded), then
the installed client against the real server, and the README's quick start, taken from the
README itself, run with the installed package against a dev-mode server (as `make run` starts it).

Run from the repository root:
    /usr/bin/python3 -m unittest discover -s clients/python/tests -v
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from realtime_server import HOST, SERVER, RealtimeServer, binary_available, free_port  # noqa: E402

PYTHON = "/usr/bin/python3"  # Debian's: what the README's install line uses
STEP_TIMEOUT = 180


def run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=STEP_TIMEOUT, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{args[:4]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def readme_block(lang: str, heading: str) -> str:
    """The first ```lang block under the `## heading` section of the README."""
    with open(os.path.join(PACKAGE_DIR, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, f"README has no '## {heading}' section"
    block = re.search(rf"^```{lang}\n(.*?)^```$", section.group(1), re.M | re.S)
    assert block, f"no ```{lang} block under '## {heading}'"
    return block.group(1)


class DevServer:
    """realtime-server in dev mode: no secret, no key; the sample token comes from its banner."""

    def __init__(self):
        self.port = free_port()
        self.log = tempfile.TemporaryFile(mode="w+")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REALTIME_")}
        self.proc = subprocess.Popen([SERVER, "--host", HOST, "--port", str(self.port), "--threads", "2"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 10
        while True:
            self.log.seek(0)
            output = self.log.read()
            match = re.search(r"Sample token[^\n]*:\s*\n\s*(\S+)", output)
            if match and self._healthy():
                self.token = match.group(1)
                self.output = output
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dev-mode server did not start:\n{output}")
            time.sleep(0.05)

    @property
    def ws_url(self):
        return f"ws://{HOST}:{self.port}/ws"

    def _healthy(self):
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/health/realtime", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@unittest.skipUnless(os.path.exists(PYTHON), f"{PYTHON} not found")
class PackagingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rt-python-packaging-")
        # A copy: pip builds in the source tree (build/, *.egg-info), which is not ours to litter.
        source = os.path.join(cls.tmp, "source")
        shutil.copytree(PACKAGE_DIR, source, ignore=shutil.ignore_patterns(
            "tests", "__pycache__", "build", "*.egg-info", ".venv"))
        cls.venv = os.path.join(cls.tmp, "venv")
        run([PYTHON, "-m", "venv", "--system-site-packages", cls.venv])
        cls.python = os.path.join(cls.venv, "bin", "python")
        cls.pip_output = run([cls.python, "-m", "pip", "install", "--no-index", "--no-build-isolation",
                              "--disable-pip-version-check", source]).stdout
        # Run from an empty directory so that `import boundary_realtime` can only find the install.
        cls.cwd = os.path.join(cls.tmp, "run")
        os.mkdir(cls.cwd)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def installed(self, code, *args):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return run([self.python, "-c", code, *args], cwd=self.cwd, env=env).stdout

    def test_metadata_version_license_and_dependency(self):
        self.assertIn("Successfully installed boundary-realtime-0.1.0", self.pip_output)
        info = json.loads(self.installed(
            "import json, importlib.metadata as m, boundary_realtime as b; d = m.distribution('boundary-realtime');"
            "print(json.dumps({'version': d.version, 'license': d.metadata['License'], 'requires': d.requires,"
            " 'classifiers': d.metadata.get_all('Classifier'), 'file': b.__file__, 'module_version': b.__version__,"
            " 'files': [str(f) for f in d.files]}))"))
        self.assertEqual(info["version"], "0.1.0")
        self.assertEqual(info["module_version"], "0.1.0")
        self.assertEqual(info["license"], "MIT")
        self.assertIn("License :: OSI Approved :: MIT License", info["classifiers"])
        self.assertTrue(any(r.startswith("websockets") for r in info["requires"]), info["requires"])
        self.assertTrue(info["file"].startswith(self.venv), f"imported from {info['file']}, not the venv")
        self.assertTrue(any(f.endswith("LICENSE") for f in info["files"]), "the LICENSE is installed")
        with open(os.path.join(PACKAGE_DIR, "LICENSE"), encoding="utf-8") as f:
            text = f.read()
        self.assertTrue(text.startswith("MIT License") and "Boundary Realtime contributors" in text)

    @unittest.skipUnless(binary_available(), f"server binary not built: {SERVER}")
    def test_installed_client_talks_to_the_server(self):
        server = RealtimeServer().start()
        self.addCleanup(server.stop)
        token = server.token("pip-user")
        out = self.installed("""
import asyncio, sys
from boundary_realtime import RealtimeClient
async def main():
    async with RealtimeClient(sys.argv[1], token=sys.argv[2]) as client:
        got = asyncio.Event()
        await client.subscribe("chat:pip", lambda msg: got.set())
        delivered = await client.publish("chat:pip", {"type": "chat", "text": "x"})
        await asyncio.wait_for(got.wait(), 5)
        print(client.user_id, delivered)
asyncio.run(asyncio.wait_for(main(), 20))
""", server.ws_url, token)
        self.assertEqual(out.strip(), "pip-user 1")

    @unittest.skipUnless(binary_available(), f"server binary not built: {SERVER}")
    def test_readme_quick_start_against_a_dev_mode_server(self):
        server = DevServer()
        self.addCleanup(server.stop)
        self.assertRegex(server.output, r"Publish\s*: clients may publish to demo:\*\*")
        code = readme_block("python", "Quick start")
        url_line = 'URL = "ws://127.0.0.1:3000/ws"'
        token_line = 'TOKEN = "<the sample token the dev-mode server prints>"'
        self.assertIn(url_line, code)
        self.assertIn(token_line, code)
        code = code.replace(url_line, f"URL = {server.ws_url!r}").replace(token_line, f"TOKEN = {server.token!r}")
        script = os.path.join(self.cwd, "quickstart.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(code)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = run([self.python, script], cwd=self.cwd, env=env).stdout
        expected = readme_block("text", "Quick start")
        self.assertEqual(sorted(out.strip().splitlines()), sorted(expected.strip().splitlines()))


if __name__ == "__main__":
    unittest.main()
