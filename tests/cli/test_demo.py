"""``mona-middleware demo`` end to end: a subprocess, a real app server, a real collector."""

from __future__ import annotations

import os
import queue
import re
import shlex
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
from mona_middleware._cli import main as cli
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
    assert not list(tmp_path.iterdir())  # nothing left behind in the working directory
    # The closing lines: what happened, why the errors, and the next step; no address of
    # the demo's collector, which has stopped by then.
    assert f"What happened: each of the {REQUESTS} answered requests became one Mona" in out
    assert re.search(r"The \d+ x 500 \(GET /fail raises\).* were on purpose: an error is", out)
    assert "Next, your own app:" in out
    assert "export AUTH_MODE=NO_AUTH MONA_SDK_USER_ID=local" in out
    assert "mona-middleware demo --serve" in out
    assert not re.search(r"http://127\.0\.0\.1:(?!8765/)\d+/", out.split("What happened")[1])


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
        while "Your own app can send to this collector too" not in lines.get(timeout=10):
            pass
        exports = lines.get(timeout=10).strip()
        own = dict(pair.split("=", 1) for pair in shlex.split(exports.removeprefix("export ")))
        assert own["MONA_SDK_OVERRIDE_REST_API_URL"] == page_url + "export"
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


def test_the_demo_runs_from_the_package_alone(tmp_path: Path) -> None:
    """What a wheel install looks like: the package, no example_apps/ and no checkout."""
    pytest.importorskip("flask")
    site = tmp_path / "site"
    shutil.copytree(ROOT / "mona_middleware", site / "mona_middleware")
    env = {**os.environ, "PYTHONPATH": str(site)}
    work = tmp_path / "work"
    work.mkdir()

    result = subprocess.run(
        [sys.executable, "-m", "mona_middleware", "demo", "--requests", "10"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "The collector stored 10 contexts" in result.stdout
    assert not list(work.iterdir())


def test_the_next_step_s_environment_reaches_a_collector(tmp_path: Path) -> None:
    """The three variables the demo prints point an app at a loopback collector."""
    with Collector(port=0, db=str(tmp_path / "c.sqlite3")) as collector:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONA_", "AUTH_MODE"))}
        env.update(demo.local_env(collector.port))
        code = (
            "import mona_middleware as mona\n"
            "with mona.context('OWN_APP', context_id='own-1'):\n"
            "    mona.export({'score': 0.5})\n"
            "assert mona.flush(10)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        contexts = requests.get(collector.url + "/api/contexts", timeout=5).json()["contexts"]

    assert [(c["class"], c["id"], c["fields"]) for c in contexts] == [
        ("OWN_APP", "own-1", {"score": 0.5})
    ]
    assert demo.local_env()["MONA_SDK_OVERRIDE_REST_API_URL"] == (
        f"http://127.0.0.1:{demo.COLLECTOR_PORT}/monaExport"
    )
    _, subcommands = cli.build_parser(only="collector")
    assert subcommands["collector"].get_default("port") == demo.COLLECTOR_PORT
    assert subcommands["collector"].get_default("user_id") == "local"


def test_what_happened_names_the_deliberate_errors() -> None:
    statuses = Counter({200: 20, 500: 3, 404: 2})

    text = demo.what_happened(statuses, 25, 25)

    assert text.splitlines() == [
        "What happened: each of the 25 answered requests became one Mona context, exported"
        " by the app in the background; the collector stored 25.",
        "The 3 x 500 (GET /fail raises) and 2 x 404 (GET /no-such-page does not exist) were"
        " on purpose: an error is recorded like any request, with its http_status_code (and"
        " exception_type for a 500).",
    ]
    assert demo.what_happened(Counter({200: 5}), 5, 5).count("\n") == 0


def test_a_missing_framework_says_what_to_install() -> None:
    example = demo.Example(("no_such_framework_here",), "flask", demo.COMMON_ROUTES)

    with pytest.raises(demo.DemoError) as raised:
        demo._require(example, "flask")

    assert str(raised.value) == (
        "the flask demo needs no_such_framework_here: pip install no_such_framework_here"
        " (or install mona_middleware with its [flask] extra, as its README's Install"
        " section says)"
    )
