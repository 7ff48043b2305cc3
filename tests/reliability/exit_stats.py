"""Inside the processes under test: each process's final ``stats()``, written at its exit.

Why not ``mona.stats()`` at exit: ``shutdown()`` forgets the exporter, and ``stats()``
after it makes a new, empty one. So every exporter this process used is remembered
(``track``), shut down within ``shutdown_timeout``, and its counters written as JSON
to ``$RELIABILITY_STATS_DIR/<pid>-<token>.json`` for the test to add up. Imports no
test tooling: gunicorn workers, Celery children and uWSGI workers load it.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mona_middleware as mona
from mona_middleware._runtime import process

__all__ = ["forget", "install_uwsgi_atexit", "shutdown_tracked", "track", "write_final"]

STATS_DIR = "RELIABILITY_STATS_DIR"

_seen: dict[int, Any] = {}  # id -> exporter; strong references, so ids are never reused
_written = threading.Event()


def track(exporter: Any = None) -> None:
    """Remember ``exporter`` (default: the process's current one) for the final stats."""
    current = exporter if exporter is not None else process.current_exporter()
    if current is not None:
        _seen.setdefault(id(current), current)


def forget() -> None:
    """Start a new ledger in this process (each example of a property test)."""
    _seen.clear()
    _written.clear()


def shutdown_tracked(timeout: float | None = None) -> bool:
    """``mona.shutdown(timeout)``, remembering the exporter it shuts down.

    The runtime's lock is held from the look to the swap, so a producer thread cannot
    slip a new exporter in between (it waits for the shutdown instead); producers
    holding the old exporter still race its shutdown, which is what is tested. (Held
    through the exporter's shutdown too: an exporter thread that needed the runtime's
    lock to finish would hang here, and the test's timeout would say so.)
    """
    with process.STATE.lock:
        track()
        return mona.shutdown(timeout)


def mine() -> list[Any]:
    """The remembered exporters that belong to this process (not a parent's copies)."""
    pid = os.getpid()
    return [e for e in _seen.values() if getattr(e, "pid", pid) == pid]


def snapshots() -> list[dict[str, Any]]:
    return [exporter.snapshot() for exporter in mine()]


def write_final(label: str = "worker", timeout: float | None = None) -> Path | None:
    """Shut the exporter down and write this process's ledger; once per process."""
    directory = os.environ.get(STATS_DIR)
    if not directory or _written.is_set():
        return None
    _written.set()
    started = time.monotonic()
    flushed = shutdown_tracked(timeout)
    record = {
        "pid": os.getpid(),
        "label": label,
        "shutdown_ok": flushed,
        "shutdown_s": round(time.monotonic() - started, 3),
        "exporters": snapshots(),
    }
    return write_record(Path(directory), record)


def write_record(directory: Path, record: dict[str, Any]) -> Path:
    """Write atomically: the test never reads half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['pid']}-{secrets.token_hex(4)}.json"
    temporary = path.with_name("." + path.name)
    temporary.write_text(json.dumps(record, default=str))
    os.replace(temporary, path)
    return path


def install_uwsgi_atexit() -> bool:
    """Under uWSGI, write the ledger from ``uwsgi.atexit`` (workers may skip Python's
    ``atexit``), after any hook already there; False elsewhere."""
    module = sys.modules.get("uwsgi")
    if module is None:
        return False
    previous = getattr(module, "atexit", None)

    def at_exit() -> None:
        try:
            if callable(previous):
                previous()
        finally:
            write_final("uwsgi")

    module.atexit = at_exit
    return True
