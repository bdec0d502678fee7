"""The operations kit: the Debian package built by CPack from the build tree of the server under
test, the systemd unit, the default configuration, the Dockerfile (it installs with the script
`make` uses) and the Makefile's `run`/`test` targets."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

from rt_harness import HERE, SERVER, RealtimeTestCase, no_server, server_binary_available

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD_DIR = os.path.dirname(os.path.abspath(SERVER))
UNIT = os.path.join(ROOT, "packaging", "realtime-server.service")
CONFIG = os.path.join(ROOT, "packaging", "config.toml")


def project_version() -> str:
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(\s*\S+\s+VERSION\s+([0-9][0-9.]*)", f.read()).group(1)


def read_unit(path: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit -> {section: {key: [values in order]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def dockerfile_stages(path: str) -> list[dict]:
    """[{from, name, run: [commands]}]; continuation lines joined."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            words = rest.split()
            stages.append({"from": words[0], "name": words[2] if len(words) > 2 else None, "run": []})
        elif instr == "RUN":
            stages[-1]["run"].append(rest)
    return stages


def makefile_recipe(target: str) -> list[str]:
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^{re.escape(target)}\s*:(?!=)", line) and ":=" not in line:
            recipe = []
            for body in lines[i + 1:]:
                if not body.startswith("\t"):
                    break
                recipe.append(body.strip().lstrip("@"))
            return recipe
    raise AssertionError(f"no {target} rule in the Makefile")


def scripts_invoked(command: str) -> set[str]:
    return {os.path.normpath(w) for w in shlex.split(command.replace("&&", " ").replace(";", " "))
            if w.endswith(".sh")}


class DebianPackageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not server_binary_available() or not os.path.isfile(os.path.join(BUILD_DIR, "CPackConfig.cmake")):
            raise unittest.SkipTest(f"no CMake build tree with CPack next to {SERVER}")
        if not shutil.which("cpack") or not shutil.which("dpkg-deb"):
            raise unittest.SkipTest("cpack or dpkg-deb missing (scripts/install-deps.sh installs them)")
        cls.out = tempfile.mkdtemp(prefix="realtime-deb-")
        proc = subprocess.run(["cpack", "-G", "DEB", "-D", "CPACK_COMPONENTS_ALL=server", "-B", cls.out],
                              cwd=BUILD_DIR, capture_output=True, text=True, timeout=240)
        if proc.returncode != 0:
            raise AssertionError(f"cpack failed:\n{proc.stdout}\n{proc.stderr}")
        debs = [f for f in os.listdir(cls.out) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(cls.out, debs[0])
        cls.root = os.path.join(cls.out, "root")
        subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True, timeout=60)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def dpkg_deb(self, *args) -> str:
        return subprocess.run(["dpkg-deb", *args, self.deb], capture_output=True, text=True, check=True,
                              timeout=60).stdout

    def test_file_name_carries_name_version_and_arch(self):
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
        self.assertEqual(os.path.basename(self.deb), f"realtime-server_{project_version()}_{arch}.deb")

    def test_contents(self):
        listing = self.dpkg_deb("-c")
        entries = {line.split()[-1]: line.split()[0] for line in listing.splitlines()}
        self.assertTrue(entries["./usr/bin/realtime-server"].startswith("-rwxr-xr-x"), listing)
        for path in ("./lib/systemd/system/realtime-server.service", "./etc/boundary-realtime/config.toml",
                     "./usr/share/doc/realtime-server/copyright"):
            self.assertIn(path, entries, listing)
        self.assertRegex(listing, r"root/root")
        # the server component only: no headers, static libraries or CMake package files
        for forbidden in ("/include/", ".a", "/cmake/", "unit_tests", "realtime-loadgen"):
            self.assertFalse([p for p in entries if forbidden in p and (forbidden != ".a" or p.endswith(".a"))],
                             f"{forbidden} in the package:\n{listing}")

    def test_control_fields_and_conffile(self):
        fields = self.dpkg_deb("-f")
        self.assertRegex(fields, r"(?m)^Package: realtime-server$")
        self.assertRegex(fields, rf"(?m)^Version: {re.escape(project_version())}$")
        depends = re.search(r"(?m)^Depends: (.*)$", fields).group(1)
        for lib in ("libssl3", "libhiredis", "libboost-json1.81.0", "libc6"):
            self.assertIn(lib, depends)
        self.assertRegex(self.dpkg_deb("-I"), r"(?m)^\s+\d+ bytes,\s+1 lines\s+conffiles\s*$")
        ctrl = os.path.join(self.out, "ctrl")
        os.makedirs(ctrl, exist_ok=True)
        subprocess.run(["dpkg-deb", "-e", self.deb, ctrl], check=True)
        with open(os.path.join(ctrl, "conffiles"), encoding="utf-8") as f:
            self.assertEqual(f.read().split(), ["/etc/boundary-realtime/config.toml"])
        for script in ("postinst", "prerm", "postrm"):
            self.assertTrue(os.access(os.path.join(ctrl, script), os.X_OK), script)

    def test_packaged_binary_runs(self):
        out = subprocess.run([os.path.join(self.root, "usr", "bin", "realtime-server"), "--version"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.stdout.strip(), f"realtime-server {project_version()}")

    def test_unit_points_at_packaged_paths(self):
        unit = read_unit(os.path.join(self.root, "lib", "systemd", "system", "realtime-server.service"))
        exec_start = shlex.split(unit["Service"]["ExecStart"][0])
        self.assertTrue(os.path.isfile(os.path.join(self.root, exec_start[0].lstrip("/"))), exec_start)
        config = exec_start[exec_start.index("--config") + 1]
        self.assertEqual(config, "/etc/boundary-realtime/config.toml")
        self.assertTrue(os.path.isfile(os.path.join(self.root, config.lstrip("/"))))


class SystemdUnitTest(unittest.TestCase):

    def test_hardening(self):
        s = read_unit(UNIT)["Service"]
        expected = {"DynamicUser": "yes", "NoNewPrivileges": "yes", "LimitNOFILE": "65536",
                    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes"}
        for key, value in expected.items():
            self.assertEqual(s.get(key), [value], key)
        self.assertEqual(s["CapabilityBoundingSet"], [""])
        self.assertEqual(s["KillSignal"], ["SIGTERM"])
        self.assertEqual(read_unit(UNIT)["Install"]["WantedBy"], ["multi-user.target"])

    def test_secrets_come_from_an_optional_environment_file(self):
        s = read_unit(UNIT)["Service"]
        self.assertEqual(len(s["EnvironmentFile"]), 1)
        self.assertTrue(s["EnvironmentFile"][0].startswith("-/etc/boundary-realtime/"), s["EnvironmentFile"])
        self.assertIn("REALTIME_API_KEY", s["ExecStartPre"][0])

    def test_systemd_accepts_the_unit(self):
        if not shutil.which("systemd-analyze"):
            raise unittest.SkipTest("systemd-analyze not installed")
        proc = subprocess.run(["systemd-analyze", "verify", UNIT], capture_output=True, text=True, timeout=60)
        # The binary is not installed here; any other complaint is a mistake in the unit.
        complaints = [l for l in (proc.stdout + proc.stderr).splitlines()
                      if l.strip() and "/usr/bin/realtime-server" not in l]
        self.assertEqual(complaints, [])


class DefaultConfigTest(RealtimeTestCase):

    @no_server
    async def test_server_starts_with_the_packaged_config(self):
        self.server = self.start_server(["--config", CONFIG])
        ws, connected = await self.connect()
        self.assertEqual(connected["type"], "connected")

    def test_packaged_config_holds_no_secrets(self):
        with open(CONFIG, encoding="utf-8") as f:
            keys = [l.split("=")[0].strip() for l in f if re.match(r"^[a-z-]+\s*=", l)]
        self.assertNotIn("jwt-secret", keys)
        self.assertNotIn("api-key", keys)
        self.assertIn("host", keys)


class DockerfileTest(unittest.TestCase):

    def test_build_stage_installs_with_the_script_make_uses(self):
        make_scripts = set().union(*(scripts_invoked(c) for c in makefile_recipe("deps")))
        self.assertEqual(make_scripts, {"scripts/install-deps.sh"})
        stages = dockerfile_stages(os.path.join(ROOT, "Dockerfile"))
        self.assertGreaterEqual(len(stages), 2, "multi-stage")
        build = stages[0]
        docker_scripts = set().union(*(scripts_invoked(c) for c in build["run"]))
        self.assertTrue(make_scripts <= docker_scripts, (make_scripts, docker_scripts))
        for path in make_scripts:
            self.assertTrue(os.path.isfile(os.path.join(ROOT, path)))

    def test_debian_12_stages_and_a_lean_runtime(self):
        stages = dockerfile_stages(os.path.join(ROOT, "Dockerfile"))
        self.assertEqual({s["from"] for s in stages}, {"debian:12"})
        runtime = " ".join(stages[-1]["run"])
        self.assertNotIn("install-deps", runtime)
        self.assertNotRegex(runtime, r"-dev\b|build-essential|cmake")

    def test_build_command_is_documented(self):
        with open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8") as f:
            self.assertIn("docker build -t boundary-realtime .", f.read())


class MakefileTest(unittest.TestCase):
    """`make -n` in a scratch tree holding the real Makefile and fake inputs with chosen times."""

    def setUp(self):
        if not shutil.which("make"):
            raise unittest.SkipTest("make missing")
        self.tree = tempfile.mkdtemp(prefix="realtime-make-")
        self.addCleanup(shutil.rmtree, self.tree, True)
        shutil.copy(os.path.join(ROOT, "Makefile"), self.tree)
        for rel in ("clients/js/src/index.ts", "clients/js/package.json", "clients/js/package-lock.json",
                    "clients/js/tsconfig.json", "scripts/install-deps.sh"):
            os.makedirs(os.path.join(self.tree, os.path.dirname(rel)), exist_ok=True)
            open(os.path.join(self.tree, rel), "w").close()
            os.utime(os.path.join(self.tree, rel), (1_000_000, 1_000_000))
        self.dist = os.path.join(self.tree, "clients/js/dist/index.js")
        os.makedirs(os.path.dirname(self.dist))
        open(self.dist, "w").close()
        os.utime(self.dist, (2_000_000, 2_000_000))

    def dry_run(self, target: str) -> str:
        proc = subprocess.run(["make", "-n", target], cwd=self.tree, capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return proc.stdout

    def test_run_builds_only_the_server(self):
        out = self.dry_run("run")
        builds = [l for l in out.splitlines() if "cmake --build" in l]
        self.assertEqual(len(builds), 1, out)
        self.assertIn("--target realtime-server", builds[0])
        self.assertNotIn("npm", out, "an up-to-date JavaScript client is not rebuilt")
        self.assertIn("./build/release/realtime-server", out)

    def test_js_client_rebuilt_when_a_source_changes(self):
        os.utime(os.path.join(self.tree, "clients/js/src/index.ts"), (3_000_000, 3_000_000))
        self.assertIn("npm run --silent build", self.dry_run("run"))

    def test_test_still_builds_everything(self):
        out = self.dry_run("test")
        builds = [l for l in out.splitlines() if "cmake --build --preset release" in l]
        self.assertTrue(builds, out)
        self.assertTrue(all("--target" not in l for l in builds), builds)
        self.assertIn("ctest --preset release", out)
        self.assertIn("ctest --preset debug", out)

    def test_no_directory_messages(self):
        with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
            self.assertRegex(f.read(), r"(?m)^MAKEFLAGS \+= --no-print-directory$")


class LicenseTest(unittest.TestCase):

    def test_mit_license_at_the_root_and_named_in_the_readme(self):
        with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
            text = f.read()
        self.assertTrue(text.startswith("MIT License"))
        self.assertIn("Copyright (c) 2026 Boundary Realtime contributors", text)
        self.assertIn("THE SOFTWARE IS PROVIDED \"AS IS\"", text)
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            self.assertIn("[LICENSE](LICENSE)", f.read())


if __name__ == "__main__":
    unittest.main()
