"""The documentation against the repository and the binary: no references to files outside the
repository, every relative link resolves, the README's option and metric tables match what the
server has, and every shell variable the README's walkthrough uses is set first."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import unittest

from rt_harness import HERE, SERVER, RealtimeTestCase, server_binary_available

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def read(rel: str) -> str:
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def markdown_files() -> list[str]:
    files = ["README.md", "tests/integration/README.md", "bench/micro/README.md", "bench/peers/README.md",
             "examples/README.md", "clients/js/README.md", "clients/python/README.md"]
    files += [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)]
    return [f for f in files if os.path.isfile(os.path.join(ROOT, f))]


def table_rows(text: str, heading: str) -> list[list[str]]:
    """Rows (cells stripped) of the first table after `heading`."""
    start = text.index(heading)
    rows, in_table = [], False
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            in_table = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif in_table:
            break
    return rows[1:]  # without the header row


class RepositoryReferencesTest(unittest.TestCase):

    def test_no_reference_to_files_outside_the_repository(self):
        files = markdown_files()
        for pattern in ("tests/**/*.py", "tests/**/*.cpp", "tests/**/*.hpp", "examples/*.cpp", "app/*",
                        "packaging/*", "Dockerfile", "Makefile", "cmake/*.cmake", "src/**/*.cpp", "src/**/*.hpp",
                        "include/**/*.hpp", "clients/python/**/*.py", "clients/js/src/*.ts"):
            files += [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)]
        this = os.path.relpath(os.path.abspath(__file__), ROOT)
        offenders = []
        for rel in sorted(set(files) - {this}):
            text = read(rel)
            # The contract's source document is not in the repository: nothing may point at it.
            for needle in ("SPEC" + ".md", "/work/"):
                if needle in text:
                    offenders.append(f"{rel}: {needle}")
        self.assertEqual(offenders, [])

    def test_relative_links_resolve(self):
        broken = []
        for rel in markdown_files():
            for target in re.findall(r"\]\(([^)\s]+)\)", read(rel)):
                if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                    continue
                path = os.path.normpath(os.path.join(ROOT, os.path.dirname(rel), target.split("#")[0]))
                if not os.path.exists(path):
                    broken.append(f"{rel}: {target}")
        self.assertEqual(broken, [])

    def test_readme_sets_every_shell_variable_before_using_it(self):
        text = read("README.md")
        used = set(re.findall(r"\$([A-Z][A-Z0-9_]*)\b", text))
        self.assertTrue({"KEY", "CID"} <= used, used)
        for var in sorted(used):
            first_use = re.search(rf"(?<!`)\${var}\b", text).start()  # in code, not `$VAR` in prose
            assignment = re.search(rf"(?m)(?:^|[;\s]){var}=", text)
            self.assertIsNotNone(assignment, f"README never shows how to set ${var}")
            self.assertLess(assignment.start(), first_use, f"${var} is used before it is set")


class ReadmeOptionsTest(unittest.TestCase):

    def setUp(self):
        if not server_binary_available():
            raise unittest.SkipTest(f"server binary not found: {SERVER}")

    def test_configuration_table_matches_the_binary(self):
        help_text = subprocess.run([SERVER, "--help"], capture_output=True, text=True, timeout=10).stdout
        flags = set(re.findall(r"(?m)^\s+(--[a-z][a-z-]*)", help_text)) - {"--help", "--config", "--version"}
        rows = table_rows(read("README.md"), "## Configuration")
        documented = {}
        for flag, env, key, *_ in rows:
            documented[flag.strip("`")] = (env.strip("`"), key.strip("`"))
        self.assertEqual(set(documented), flags)
        for flag, (env, key) in documented.items():
            name = flag[2:]
            self.assertEqual(key, name, flag)
            expected_env = "REALTIME_REDIS_URL" if name == "redis" else "REALTIME_" + name.upper().replace("-", "_")
            self.assertEqual(env, expected_env, flag)
            self.assertIn(f"[env {expected_env}]", help_text, flag)


class ReadmeMetricsTest(RealtimeTestCase):

    def test_metrics_table_matches_the_exported_samples(self):
        rows = table_rows(read("README.md"), "## Metrics")
        documented = {row[0].strip("`"): row[1] for row in rows}
        exported = {}
        for line in self.server.metrics_text().splitlines():
            m = re.match(r"^# TYPE (\S+) (\S+)$", line)
            if m:
                exported[m.group(1)] = m.group(2)
        self.assertEqual(documented, exported)


if __name__ == "__main__":
    unittest.main()
