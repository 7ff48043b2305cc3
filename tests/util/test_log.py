"""The package logger: its name and level from mona_sdk's variables, and the rate-limited
log in a forked child."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

import pytest

import mona_middleware as mona
from mona_middleware._util import log as _log

from ..servers import wait_for_child


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


def test_mona_sdk_fallback_names_and_a_numeric_level(monkeypatch, caplog):
    monkeypatch.setenv("MONA_LOGGER_NAME", "mona-logger-old")
    monkeypatch.setenv("MONA_LOGGING_LEVEL", "10")  # numeric, as both seeds document
    mona.configure(transport="memory")
    try:
        assert logging.getLogger("mona-logger-old").level == logging.DEBUG
        caplog.set_level(logging.DEBUG, "mona-logger-old")
        mona.export({"outside": True})
        assert [r.name for r in caplog.records] == ["mona-logger-old"]
    finally:
        mona.configure(transport="memory", logger_name="mona_middleware")
        logging.getLogger("mona-logger-old").setLevel(logging.NOTSET)


def test_mona_print_logs_prints_the_package_log_to_stdout(tmp_path):
    code = "import mona_middleware as mona; mona.configure(transport='memory'); mona.export({})"
    env = {**os.environ, "MONA_PRINT_LOGS": "true", "MONA_SDK_LOGGING_LEVEL": "WARNING"}
    env.pop("MONA_SDK_LOGGER_NAME", None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (
        " - mona_middleware - WARNING - mona_middleware: export() called outside any context"
        in (done.stdout)
    )
