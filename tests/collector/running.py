"""A real ``mona-middleware collector`` process, as a user starts it, for the tests that
attack it: its banner parsed, its stdout and stderr collected by threads (so reads time
out), its descriptors and peak memory read from /proc, stopped with SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

STARTUP_TIMEOUT = 20.0
JSON = {"Content-Type": "application/json"}


class CollectorProcess:
    """``python -m mona_middleware collector --port 0 <args>``; ``nofile`` caps its
    descriptors (RLIMIT_NOFILE) as a laptop's ``ulimit -n`` would."""

    def __init__(self, *args: str, nofile: int | None = None) -> None:
        def limits() -> None:  # runs in the child, before exec
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "mona_middleware", "collector", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=limits,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, False), daemon=True).start()
        banner = self.read_until("Press Ctrl-C")
        self.url = self._field(banner, r"listening on (http://127\.0\.0\.1:\d+)")
        self.ui_url = self._field(banner, r"^UI:\s+(\S+)")
        self.api_key = self._field(banner, r"^API key: (\S+)")
        self.secret = self._field(banner, r"^Secret:\s+(\S+)")
        self.port = int(self.url.rsplit(":", 1)[1])

    def _pump(self, stream, is_stdout: bool) -> None:
        for line in stream:
            line = line.rstrip("\n")
            (self.stdout if is_stdout else self.stderr).append(line)
            if is_stdout:
                self.lines.put(line)

    @staticmethod
    def _field(banner: str, pattern: str) -> str:
        match = re.search(pattern, banner, re.MULTILINE)
        assert match, f"{pattern!r} not in banner:\n{banner}"
        return match.group(1)

    def read_until(self, marker: str, timeout: float = STARTUP_TIMEOUT) -> str:
        """Stdout up to the first line holding ``marker``."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while not any(marker in line for line in seen):
            try:
                seen.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"no {marker!r} in {seen}; stderr: {self.stderr[-20:]}"
                ) from None
        return "\n".join(seen)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def memory_kb(self, field: str = "VmHWM") -> int:
        """Peak (``VmHWM``) or current (``VmRSS``) resident memory, in kB."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def post(self, path: str, body: object, token: str = "any", **kwargs) -> requests.Response:
        headers = {**JSON, "Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        data = body if isinstance(body, bytes) else None
        return requests.post(
            self.url + path,
            json=None if data is not None else body,
            data=data,
            headers=headers,
            timeout=kwargs.pop("timeout", 20),
            **kwargs,
        )

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(self.url + path, params=params, timeout=20)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=10)


@pytest.fixture
def start_collector() -> Iterator[Callable[..., CollectorProcess]]:
    """``start_collector(*args, nofile=None)``: a collector process, stopped afterwards."""
    started: list[CollectorProcess] = []

    def start(*args: str, nofile: int | None = None) -> CollectorProcess:
        started.append(CollectorProcess(*args, nofile=nofile))
        return started[-1]

    yield start
    for running in started:
        running.stop()
