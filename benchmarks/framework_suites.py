"""Run a framework's own test suite alone and with our middleware in every app it builds,
and compare the two test by test.

    python -m benchmarks.framework_suites starlette [--transport file] [-- PYTEST_ARGS]
    python -m benchmarks.framework_suites aiohttp -- -o addopts= \
        -m "not dev_mode and not autobahn and not internal" "tests/test_web_*.py"

Downloads the installed version's sdist from the package index (``pip download
--no-binary :all:``), unpacks it under a temporary directory (never in the repository),
and runs ``python -m pytest`` there twice, with this interpreter (which must have
mona_middleware, the framework and the suite's own test dependencies installed;
``PYTHONSAFEPATH`` keeps the sdist's own package, without its compiled parts, off the
path; a quoted ``*`` in an argument is expanded there), the second time with
``-p mona_everywhere`` (see
``benchmarks/mona_everywhere.py``). Prints both tallies, every test whose outcome
differs, and what the plugin counted (contexts sent, dropped, errors we logged). Each
run is bounded by ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def fetch(distribution: str, into: Path) -> Path:
    """The unpacked sdist of the installed ``distribution``."""
    version = importlib.metadata.version(distribution)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         f"{distribution}=={version}", "-d", str(into)],
        check=True, timeout=300,
    )  # fmt: skip
    (archive,) = into.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    (tree,) = (path for path in into.iterdir() if path.is_dir())
    return tree


def run(tree: Path, report: Path, plugin: bool, args: list[str], env: dict, timeout: float) -> str:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"]
    if plugin:
        argv += ["-p", "mona_everywhere"]
    # The plugin's folder only: the repository's own ``tests`` would shadow the suite's.
    environment = {**env, "PYTHONPATH": str(HERE)}
    environment["PYTHONSAFEPATH"] = "1"
    expanded = [
        name
        for arg in args
        for name in (
            sorted(str(p.relative_to(tree)) for p in tree.glob(arg)) if "*" in arg else [arg]
        )
    ]
    done = subprocess.run(
        argv + expanded, cwd=tree, env=environment, capture_output=True, text=True, timeout=timeout
    )
    return done.stdout + done.stderr


def outcomes(report: Path) -> dict[str, str]:
    found = {}
    for case in ET.parse(report).iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = child.tag
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        found[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("distribution", help="starlette, aiohttp, fastapi...")
    parser.add_argument("--transport", default="memory", help="the exporter's (memory, file)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("pytest_args", nargs="*", default=["tests"])
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="framework-suite-") as work:
        tree = fetch(options.distribution, Path(work))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONA_")}
        env["MONA_MIDDLEWARE_TRANSPORT"] = options.transport
        env["MONA_MIDDLEWARE_FILE_PATH"] = str(Path(work) / "mona-messages.jsonl")
        results = {}
        for plugin in (False, True):
            report = Path(work) / f"{'with' if plugin else 'alone'}.xml"
            output = run(tree, report, plugin, options.pytest_args, env, options.timeout)
            results[plugin] = outcomes(report)
            label = "with mona_middleware: " if plugin else "alone: "
            print(label + output.strip().splitlines()[-1])
            if plugin:
                print(*[line for line in output.splitlines() if "mona_everywhere:" in line])
                lines = Path(env["MONA_MIDDLEWARE_FILE_PATH"])
                if lines.exists():
                    print(f"messages in the file: {len(lines.read_text().splitlines())}")
        alone, mine = results[False], results[True]
        print("alone:", dict(Counter(alone.values())))
        print("with: ", dict(Counter(mine.values())))
        differ = sorted(t for t in set(alone) | set(mine) if alone.get(t) != mine.get(t))
        for test in differ:
            print(f"differs: {test}: {alone.get(test)} -> {mine.get(test)}")
        print(f"{len(differ)} test(s) differ")
        return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
