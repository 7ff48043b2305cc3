"""``mona-middleware demo`` end to end: a subprocess, a real app server, a real collector."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from mona_middleware._cli import demo
from mona_middleware.collector import Collector

ROOT = Path(__file__).resolve().parents[2]


REQUESTS = 30


# Which context class each example gives a path (the rest are RECOMMENDATIONS).
CLASS_OF_PATH = {
    "fastapi": {"/predict": "PREDICTIONS"},
    "django": {"/items/": "ITEM_LOOKUP", "/apredict": "ASYNC_RECOMMENDATIONS"},
}


COMMON_FIELDS = ("duration_ms", "http_method", "http_route", "http_status_code")


def run_demo(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mona_middleware", "demo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def expected_classes(framework: str, count: int) -> Counter[str]:
    """The classes the demo's (seeded, so fixed) requests must produce, minus the 404s."""
    classes: Counter[str] = Counter()
    for _, path, _ in demo.plan_requests(demo.EXAMPLES[framework].routes, count):
        names = CLASS_OF_PATH.get(framework, {})
        classes[next((c for p, c in names.items() if path.startswith(p)), "RECOMMENDATIONS")] += 1
    return classes


def class_rows(out: str) -> dict[str, tuple[int, int]]:
    """The 'context class / contexts / messages' table of the report."""
    block = out.split("context class", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\s+([A-Z_]+)\s+(\d+)\s+(\d+)$", block, re.MULTILINE)
    return {name: (int(contexts), int(messages)) for name, contexts, messages in rows}


@pytest.mark.parametrize("framework", ["flask", "starlette", "fastapi", "django"])
def test_demo_stores_one_context_per_request(framework: str, tmp_path: Path) -> None:
    for module in demo.EXAMPLES[framework].modules:
        pytest.importorskip(module)
    started = time.monotonic()

    result = run_demo("--framework", framework, "--requests", str(REQUESTS), cwd=tmp_path)

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert time.monotonic() - started < 30
    assert f"Sent {REQUESTS} requests to the {framework} example at http://127.0.0.1:" in out
    statuses = {code: int(n) for n, code in re.findall(r"(\d+) x (\d{3})", out.splitlines()[0])}
    assert sum(statuses.values()) == REQUESTS and statuses["500"] > 0 and statuses["200"] > 0
    assert f"The collector stored {REQUESTS} contexts from" in out
    classes = class_rows(out)
    assert {name: contexts for name, (contexts, _) in classes.items()} == expected_classes(
        framework, REQUESTS
    )
    for name in classes:
        assert f"Fields of {name} (" in out
    fields = set(re.findall(r"^  ([a-z_]+)\s+\d+", out, re.MULTILINE))
    assert set(COMMON_FIELDS) <= fields
    assert "model_version" in fields
    assert re.search(r"^The collector's page: http://127\.0\.0\.1:\d+/", out, re.MULTILINE)
    assert not list(tmp_path.iterdir())  # nothing left behind in the working directory


def test_db_keeps_the_contexts_across_runs(tmp_path: Path) -> None:
    pytest.importorskip("flask")
    db = tmp_path / "demo.sqlite3"

    first = run_demo("--requests", "10", "--db", str(db), cwd=tmp_path)
    second = run_demo("--requests", "5", "--db", str(db), cwd=tmp_path)

    assert first.returncode == 0 and second.returncode == 0, second.stdout + second.stderr
    assert "The collector stored 15 contexts" in second.stdout
    assert f"The data is kept in {db}" in second.stdout
    with Collector(db=str(db)) as reopened:
        assert reopened.store.context_count() == 15


def test_serve_keeps_both_running_until_ctrl_c(tmp_path: Path) -> None:
    pytest.importorskip("flask")
    process = subprocess.Popen(
        [sys.executable, "-m", "mona_middleware", "demo", "--requests", "5", "--serve"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    try:
        serving = ""
        deadline = time.monotonic() + 30
        while "Serving until Ctrl-C" not in serving:
            serving = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        app_url, page_url = re.findall(r"http://127\.0\.0\.1:\d+/?", serving)

        assert requests.post(app_url + "/predict", json={"items": [1, 2]}, timeout=5).ok
        deadline = time.monotonic() + 10  # the app flushes every 0.2 s while serving
        while requests.get(page_url + "api/health", timeout=5).json()["contexts"] < 6:
            assert time.monotonic() < deadline, "the extra request never reached the collector"
            time.sleep(0.05)

        process.send_signal(signal.SIGINT)
        try:  # the app gets up to demo.STOP_TIMEOUT to flush, the collector a few seconds
            status = process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            printed = "".join(iter(lambda: lines.get_nowait() if not lines.empty() else "", ""))
            pytest.fail(
                f"demo --serve did not stop\nstdout: {printed}\nstderr: {process.stderr.read()}"
            )
        assert status == 0, process.stderr.read()
        with pytest.raises(requests.ConnectionError):
            requests.get(app_url + "/health", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_without_the_checkout_it_says_how_to_get_the_examples(tmp_path: Path) -> None:
    site = tmp_path / "site"  # what a wheel install looks like: the package, no example_apps
    shutil.copytree(ROOT / "mona_middleware", site / "mona_middleware")
    env = {**os.environ, "PYTHONPATH": str(site)}

    result = subprocess.run(
        [sys.executable, "-m", "mona_middleware", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert str(site / "example_apps") in result.stderr
    assert "pip install -e ." in result.stderr
