"""The package logger: its name and level from mona_sdk's variables, and the rate-limited
log in a forked child."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

import mona_middleware as mona
from mona_middleware._util import log as _log


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_the_rate_limited_log_works_in_a_child_forked_while_a_thread_held_its_lock():
    own = _log.RateLimitedLog(log=logging.getLogger("mona_middleware.test_fork"))
    held, release = threading.Event(), threading.Event()

    def hold_locks() -> None:
        with _log.limited.lock, own.lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_locks)
    holder.start()
    try:
        assert held.wait(5)
        pid = os.fork()
        if pid == 0:  # the child: no holder thread here, its locks must be fresh
            try:
                ok = _log.limited(logging.DEBUG, "fork", "child") and own(logging.DEBUG, "k", "x")
                os._exit(0 if ok else 1)
            finally:
                os._exit(2)
        status = wait_for_child(pid, timeout=10)
    finally:
        release.set()
        holder.join(5)
    assert os.waitstatus_to_exitcode(status) == 0


def wait_for_child(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish in {timeout}s: deadlocked")


def test_logger_name_and_level_follow_mona_sdk_variables(monkeypatch, caplog):
    monkeypatch.setenv("MONA_SDK_LOGGER_NAME", "my-mona")
    monkeypatch.setenv("MONA_SDK_LOGGING_LEVEL", "ERROR")
    mona.configure(transport="memory")
    try:
        assert logging.getLogger("my-mona").level == logging.ERROR
        caplog.set_level(logging.DEBUG, "my-mona")
        mona.export({"outside": True})
        assert [r.name for r in caplog.records] == ["my-mona"]
    finally:
        mona.configure(transport="memory", logger_name="mona_middleware")
