"""The package logger: its name and level from mona_sdk's variables, and the rate-limited
log in a forked child."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

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


class Lines(logging.Handler):
    """Every record a logger emits, formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def listening(name: str) -> tuple[logging.Logger, Lines]:
    log = logging.getLogger(f"mona_middleware.test_limit.{name}")
    lines = Lines()
    log.addHandler(lines)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log, lines


def test_keys_are_bounded_per_kind_and_the_folded_ones_are_summed_up():
    log, lines = listening("bounded")
    limit = _log.RateLimitedLog(60, log, keys_per_kind=10, max_kinds=5)
    for n in range(1000):  # a thousand different problems of one kind, at once
        limit(logging.ERROR, f"field:NANS:'f{n}'", "dropped field %s", n)
    assert limit.keys() == 10
    assert lines.lines[:10] == [f"dropped field {n}" for n in range(10)]
    assert (
        len(lines.lines) == 11
        and "too many different problems of one kind ('field')" in (lines.lines[10])
    )
    # Another kind is not silenced by the flood.
    assert limit(logging.WARNING, "drop:queue full", "dropped %d message(s)", 3)
    folded, distinct = limit.folded()
    assert folded == 990 and abs(distinct - 990) <= 20  # linear counting, 8 KiB
    for n in range(10, 20):  # folded again: more messages, the same problems
        limit(logging.ERROR, f"field:NANS:'f{n}'", "dropped field %s", n)
    assert limit.folded()[0] == 1000 and abs(limit.folded()[1] - 990) <= 20
    assert limit.summarize()
    assert "1000 more log message(s), about 9" in lines.lines[-1]
    assert limit.folded() == (0, 0) and not limit.summarize()  # said once


def test_kinds_are_bounded_too_and_keys_made_from_values_are_cut():
    log, _ = listening("kinds")
    limit = _log.RateLimitedLog(60, log, keys_per_kind=10, max_kinds=5)
    for n in range(100):
        limit(logging.ERROR, f"kind{n}", "problem %d", n)  # no ':': each key its own kind
    assert limit.keys() == 5 and limit.folded()[0] == 95
    limit.reset()
    assert limit(logging.ERROR, "field:" + "x" * 100_000, "long")
    assert not limit(logging.ERROR, "field:" + "x" * 100_000, "long")  # the same key, cut
    assert limit.keys() == 1


def test_keys_whose_interval_is_over_make_room_and_keep_their_count():
    log, _ = listening("expired")
    limit = _log.RateLimitedLog(0.01, log, keys_per_kind=2, max_kinds=2)
    assert limit(logging.ERROR, "field:a", "a") and limit(logging.ERROR, "field:b", "b")
    assert not limit(logging.ERROR, "field:a", "a")  # suppressed: counted for a
    time.sleep(0.02)  # both intervals over: the oldest makes room for a new key
    assert limit(logging.ERROR, "field:c", "c")
    assert limit.keys() == 2
    assert limit.folded()[0] == 1  # a's suppressed repeat, gone with its key, still counted


def test_a_hundred_thousand_nan_fields_under_new_names_keep_the_log_and_memory_bounded(
    caplog,
):
    """Each context exports a NaN under a field name of its own: one dropped field each,
    counted; the log gets one line per kept key and one notice, not one line each."""
    mona.configure(transport="memory", flush_interval=0.05)
    caplog.set_level(logging.DEBUG, "mona_middleware")
    count = 20_000
    for n in range(count):
        with mona.context("NANS", context_id=f"c{n}"):
            mona.export({f"field_{n}": float("nan"), "ok": n})
    assert mona.flush(30)
    assert mona.stats()["fields_dropped"] == count
    dropped = [r for r in caplog.records if "dropped field" in r.getMessage()]
    assert len(dropped) == 100
    assert sum("too many different problems" in r.getMessage() for r in caplog.records) == 1
    assert _log.limited.keys() <= 100 + 10
    folded, distinct = _log.limited.folded()
    assert folded == count - 100 and abs(distinct - folded) <= folded * 0.03
    assert _log.limited.summarize()
    assert f"{count - 100} more log message(s)" in caplog.records[-1].getMessage()


def test_safe_repr_never_raises():
    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    assert (
        _log.safe_repr(Hostile())
        == "<test_safe_repr_never_raises.<locals>.Hostile whose repr() raised RuntimeError>"
    )
    assert _log.safe_repr("x") == "'x'"
