"""Real app servers (gunicorn, uvicorn, ``python app.py``) started by tests, always bounded.

Each server runs in its own process group with the environment pointing the exporter at
a ``MonaTestServer``; ``stop()`` sends SIGTERM (then SIGKILL if it overstays) and returns
the exit code, so a test can assert what reached the Mona server after a real shutdown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from .mona_server import MonaTestServer

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mona_settings(server: MonaTestServer) -> dict[str, str]:
    """The variables a user sets to reach Mona (mona_sdk's own names), pointed at ``server``."""
    return {
        "MONA_SDK_API_KEY": server.api_key,
        "MONA_SDK_SECRET": server.secret,
        "MONA_SDK_AUTH_API_TOKEN_URL": server.token_url,
        "MONA_SDK_REFRESH_TOKEN_URL": server.refresh_url,
        "MONA_SDK_OVERRIDE_REST_API_URL": server.export_url,
    }


def mona_env(server: MonaTestServer, **extra: str) -> dict[str, str]:
    """Environment that sends a child process's exports to ``server`` quickly."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MONA_", "AUTH_MODE"))
    }
    env.update(mona_settings(server))
    env.update(
        {
            "MONA_MIDDLEWARE_FLUSH_INTERVAL": "30",  # only shutdown flushes, as under test
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        }
    )
    env.update(extra)
    return env


def run_code(
    code: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter with ``env`` (``mona_env``), bounded; it must exit 0."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done


class AppServer:
    """A server process serving on 127.0.0.1:``port``."""

    def __init__(self, argv: Sequence[str], port: int, env: dict[str, str], cwd: Path = ROOT):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            list(argv),
            env=env,
            cwd=str(cwd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output = ""

    def wait_ready(self, path: str = "/", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.process.communicate()[0]}")
            try:
                requests.get(self.url + path, timeout=1)
                return
            except (requests.ConnectionError, requests.Timeout):  # not listening, or a
                time.sleep(0.05)  # worker still booting behind the master's socket
        self.kill()
        raise TimeoutError(f"server not ready within {timeout} s:\n{self.output}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the server (its master process only, as an orchestrator would)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.output = self.process.communicate(timeout=10)[0]

    def __enter__(self) -> AppServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def gunicorn(app: str, env: dict[str, str], *args: str, workers: int = 2) -> AppServer:
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--graceful-timeout",
        "20",
        *args,
        app,
    ]
    return AppServer(argv, port, env)


def uvicorn(app: str, env: dict[str, str], *args: str) -> AppServer:
    port = free_port()
    argv = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), *args, app]
    return AppServer(argv, port, env)


def python_script(script: str | Path, env: dict[str, str], *args: str) -> AppServer:
    """``python script.py`` with the port passed as ``PORT``."""
    port = free_port()
    return AppServer([sys.executable, str(script), *args], port, {**env, "PORT": str(port)})


def wait_for_child(pid: int, timeout: float) -> int:
    """The wait status of a forked child; kill it and fail the test if it hangs."""
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish in {timeout}s: deadlocked")
