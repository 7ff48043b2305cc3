"""``mona-middleware collector`` as a user runs it: a subprocess, a banner, SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mona_middleware._cli import main as cli
from mona_middleware.collector import Collector

STARTUP_TIMEOUT = 20.0


class RunningCLI:
    """A CLI subprocess whose stdout lines are collected by a thread, so reads can time out."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mona_middleware", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def read_until(self, marker: str, timeout: float = STARTUP_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while not any(marker in line for line in self.seen):
            try:
                self.seen.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                stderr = self.process.stderr.read() if self.process.poll() is not None else ""
                raise AssertionError(f"no {marker!r} in {self.seen} {stderr}") from None
        return "\n".join(self.seen)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def run_cli() -> Iterator:
    started: list[RunningCLI] = []

    def start(*args: str) -> RunningCLI:
        started.append(RunningCLI(*args))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def _field(banner: str, pattern: str) -> str:
    match = re.search(pattern, banner, re.MULTILINE)
    assert match, f"{pattern!r} not in banner:\n{banner}"
    return match.group(1)


def test_collector_command_serves_and_stops_on_sigterm(run_cli, tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    running = run_cli("collector", "--port", "0", "--db", str(db))

    banner = running.read_until("Press Ctrl-C")
    url = _field(banner, r"listening on (http://127\.0\.0\.1:\d+)")
    api_key = _field(banner, r"^API key: (\S+)")
    secret = _field(banner, r"^Secret:  (\S+)")
    assert f"export MONA_SDK_OVERRIDE_REST_API_URL={url}/export" in banner
    assert f"export MONA_SDK_API_KEY={api_key}" in banner
    for name in ("MONA_SDK_SECRET", "MONA_SDK_USER_ID", "MONA_SDK_AUTH_API_TOKEN_URL",
                 "MONA_SDK_REFRESH_TOKEN_URL"):  # fmt: skip
        assert f"export {name}=" in banner

    token_url = f"{url}/identity/resources/auth/v1/api-token"
    tokens = requests.post(token_url, json={"clientId": api_key, "secret": secret}, timeout=5)
    body = {
        "userId": "local",
        "messages": [{"arcClass": "CLI", "contextId": "1", "message": {"a": 1}}],
    }
    headers = {"Authorization": f"Bearer {tokens.json()['accessToken']}"}
    assert requests.post(f"{url}/export", json=body, headers=headers, timeout=5).status_code == 200
    assert requests.get(f"{url}/api/classes", timeout=5).json()["classes"]["CLI"]["contexts"] == 1

    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=10) == 0
    assert "stopped" in running.read_until("stopped", timeout=5)

    with Collector(db=str(db)) as reopened:
        assert reopened.api_key == api_key
        assert reopened.store.context("CLI", "1")["fields"] == {"a": 1}


def test_sigint_stops_it_too(run_cli) -> None:
    running = run_cli("collector", "--port", "0", "--db", ":memory:")
    running.read_until("Press Ctrl-C")

    running.process.send_signal(signal.SIGINT)

    assert running.process.wait(timeout=10) == 0


def test_port_in_use_is_a_clear_error(run_cli, collector: Collector) -> None:
    running = run_cli("collector", "--port", str(collector.port), "--db", ":memory:")

    assert running.process.wait(timeout=STARTUP_TIMEOUT) == 1
    assert "cannot listen" in running.process.stderr.read()


def test_api_key_without_secret_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["collector", "--api-key", "k", "--db", ":memory:"]) == 2
    assert "secret" in capsys.readouterr().err


def test_a_loopback_collector_prints_what_it_accepted_and_strict_refuses(run_cli) -> None:
    running = run_cli("collector", "--port", "0", "--db", ":memory:")
    banner = running.read_until("Press Ctrl-C")
    assert "Any API key, secret, token and user id is accepted" in banner
    url = _field(banner, r"listening on (http://127\.0\.0\.1:\d+)")
    token_url = f"{url}/identity/resources/auth/v1/api-token"
    mine = {"clientId": "my-own-key", "secret": "my-own-secret"}
    assert requests.post(token_url, json=mine, timeout=5).status_code == 200
    printed = running.read_until("Accepted api key 'my-own-key'", timeout=10)
    assert "my-own-secret" not in printed

    strict = run_cli("collector", "--port", "0", "--db", ":memory:", "--strict")
    banner = strict.read_until("Press Ctrl-C")
    assert "is accepted" not in banner
    url = _field(banner, r"listening on (http://127\.0\.0\.1:\d+)")
    refused = requests.post(f"{url}/identity/resources/auth/v1/api-token", json=mine, timeout=5)
    assert refused.status_code == 401
