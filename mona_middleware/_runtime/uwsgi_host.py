"""uWSGI: flush when a worker exits (``uwsgi.atexit``) and say which flags to set.

uWSGI loads the app in its master and forks the workers from there without running
Python's at-fork hooks (unless ``py-call-osafterfork`` is set), and without
``enable-threads`` the threads an app starts run only while a request executes Python
code. The exporter copes with both (it compares pids on use and starts afresh in the
worker; the flush at exit runs on the worker's own thread), but delivery is quicker
and steadier with the flags, so the log and ``mona-middleware check`` name them.
The ``uwsgi`` module exists only inside a uWSGI process: nothing here imports it
anywhere else.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .._util.log import logger

__all__ = ["advice", "check_warnings", "install_atexit", "running_module", "threads_allowed"]

# Either of the two is enough for the fork: workers run Python's at-fork hooks.
FORK_OPTIONS = ("py-call-osafterfork", "lazy-apps")


def running_module() -> Any | None:
    """The ``uwsgi`` module when this process runs under uWSGI, else None.

    uWSGI builds it into its embedded interpreter; elsewhere the import fails (the
    ``uwsgi`` package on PyPI installs the server, not an importable module).
    """
    module = sys.modules.get("uwsgi")
    if module is not None:
        return module
    # Never try the import outside uWSGI: a fork while another thread is inside it would
    # leave the child waiting for that import's lock for ever. uWSGI registers its
    # module as a built-in before the interpreter starts.
    if "uwsgi" not in sys.builtin_module_names:
        return None
    try:
        import uwsgi
    except ImportError:
        return None
    return uwsgi


def _set(options: Mapping[Any, Any], name: str) -> bool:
    value = options.get(name, options.get(name.encode()))
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value not in (None, False, "", "0", "false", "False", "no", "off")


def advice(options: Mapping[Any, Any], has_threads: bool | None = None) -> list[str]:
    """What to add to uWSGI's options (``uwsgi.opt``, or ``UWSGI_*`` variables).

    ``has_threads`` is uWSGI's own answer when running under it (recent releases turn
    Python threads on by themselves).
    """
    missing = []
    if not has_threads and not _set(options, "enable-threads"):
        missing.append("enable-threads = true (the exporter's threads run between requests)")
    if not any(_set(options, name) for name in FORK_OPTIONS):
        missing.append(
            "py-call-osafterfork = true, or lazy-apps = true "
            "(workers renew the exporter the moment they are forked)"
        )
    return missing


def threads_allowed() -> bool:
    """False in a uWSGI master that will fork its workers without Python's at-fork hooks.

    A thread of ours waiting for the GIL at the fork leaves the GIL's condition variable
    mid-use in the worker, whose first GIL hand-over then hangs in glibc (only
    PyOS_AfterFork_Child repairs it). So the master sends on its own thread instead
    (it normally exports little: an import-time context), and each worker starts the
    exporter's threads afresh.
    """
    module = running_module()
    if module is None:
        return True
    worker_id = getattr(module, "worker_id", None)
    if not callable(worker_id) or worker_id() != 0:
        return True  # a worker, or lazy-apps: the app loads after the fork
    options = getattr(module, "opt", {}) or {}
    return any(_set(options, name) for name in FORK_OPTIONS)


def _has_threads(module: Any) -> bool | None:
    value = getattr(module, "has_threads", None)
    return None if value is None else bool(value)


def install_atexit(flush: Callable[[], None]) -> bool:
    """Under uWSGI: run ``flush`` when a worker exits (chained after an existing hook),
    and log once which flags are missing. False when not under uWSGI."""
    module = running_module()
    if module is None:
        return False
    previous = getattr(module, "atexit", None)

    def at_exit() -> None:
        try:
            flush()
        finally:
            if callable(previous):
                previous()

    module.atexit = at_exit
    missing = advice(getattr(module, "opt", {}) or {}, _has_threads(module))
    if missing:
        logger.warning(
            "mona_middleware: running under uWSGI without %s. Contexts still arrive "
            "(the exporter renews itself in each worker and flushes at exit through "
            "uwsgi.atexit), but later and in bursts",
            "; ".join(missing),
        )
    return True


def check_warnings(env: Mapping[str, str]) -> list[str]:
    """For ``mona-middleware check``: the uWSGI flags to set, when uWSGI is installed."""
    installed = (
        running_module() is not None
        or shutil.which("uwsgi") is not None
        or importlib.util.find_spec("uwsgidecorators") is not None
    )
    if not installed:
        return []
    options = {
        key[len("UWSGI_") :].lower().replace("_", "-"): value
        for key, value in env.items()
        if key.startswith("UWSGI_")
    }
    module = running_module()
    if module is not None:
        options.update(getattr(module, "opt", {}) or {})
    missing = advice(options, None if module is None else _has_threads(module))
    if not missing:
        return []
    return [
        "uWSGI is installed: if it serves this app, run it with "
        + "; ".join(missing)
        + " (in the ini file or as UWSGI_* variables)"
    ]
