"""The package logger, a rate limiter so a failing backend cannot flood the app's logs,
and the one guard that keeps the package's own failures out of the app."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import weakref
from types import TracebackType
from typing import Any

from ..errors import MonaError
from . import forks

__all__ = ["Guard", "RateLimitedLog", "limited", "logger", "set_logger"]


class _PackageLogger:
    """The package's logger, whose name mona_sdk users may set (``MONA_SDK_LOGGER_NAME``).

    Modules import this one object; ``set_logger`` re-points it without re-importing.
    """

    def __init__(self, name: str) -> None:
        self.target = logging.getLogger(name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.target, attribute)


logger: Any = _PackageLogger("mona_middleware")


def set_logger(name: str, level: int | None, print_logs: bool = False) -> None:
    """Apply ``logger_name``, ``log_level`` and ``print_logs`` from the configuration."""
    logger.target = logging.getLogger(name)
    if level is not None:
        logger.target.setLevel(level)
    if print_logs and not any(
        getattr(handler, "_mona_print_logs", False) for handler in logger.target.handlers
    ):
        handler = logging.StreamHandler(sys.stdout)  # mona-client's MONA_PRINT_LOGS
        handler.setFormatter(
            logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
        )
        handler._mona_print_logs = True  # type: ignore[attr-defined]
        logger.target.addHandler(handler)


class RateLimitedLog:
    """Logs each distinct ``key`` at most once per ``interval`` seconds.

    The next line logged for a key says how many were suppressed in between, so the
    count is never lost even when the lines are.
    """

    def __init__(self, interval: float = 60.0, log: logging.Logger = logger) -> None:
        self._interval = interval
        self._log = log
        # Reentrant: a signal handler that logs while the code it interrupted was logging
        # must not wait for its own thread.
        self.lock = threading.RLock()
        self._last: dict[str, tuple[float, int]] = {}
        _instances.add(self)

    def __call__(self, level: int, key: str, msg: str, *args: object, **kwargs: Any) -> bool:
        """Log ``msg % args`` unless ``key`` was logged recently; True when it was logged."""
        now = time.monotonic()
        with self.lock:
            last, suppressed = self._last.get(key, (-1e18, 0))
            if now - last < self._interval:
                self._last[key] = (last, suppressed + 1)
                return False
            self._last[key] = (now, 0)
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._log.log(level, msg, *args, **kwargs)
        return True

    def reset(self) -> None:
        with self.lock:
            self._last.clear()

    def renew_lock(self) -> None:
        """A thread that held the lock at fork does not exist in the child: it never lets go."""
        self.lock = threading.RLock()


@forks.after_fork_in_child
def _renew_locks() -> None:
    for log in list(_instances):
        log.renew_lock()


_instances: weakref.WeakSet[RateLimitedLog] = weakref.WeakSet()
limited = RateLimitedLog()


class Guard:
    """The one guard around the package's own work on the app's path: a bug of ours is
    logged (with its traceback, at most once a minute per site) and swallowed, never the
    app's problem. The role Sentry's ``capture_internal_exceptions`` plays.

    ``with guard:`` at most sites. Where a request pays for every nanosecond (opening and
    closing its context), the site is ``try: ... except Exception as exc: guard.caught(exc)``
    instead: Python's ``try`` costs nothing until it raises, a ``with`` about 0.25 µs here.
    One instance per site, made at import. A ``MonaError`` passes through: the package
    raises those only when the user asked for them (``raise_export_exceptions``);
    ``BaseException`` (KeyboardInterrupt, a task's cancellation) is never ours to swallow.

    >>> guard = Guard("could not record the request")
    >>> with guard:
    ...     raise KeyError("oops")
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if kind is None or not issubclass(kind, Exception) or issubclass(kind, MonaError):
            return False
        self.caught(error)  # type: ignore[arg-type]
        return True

    def caught(self, error: Exception) -> None:
        """Log ``error`` for this site and swallow it; a ``MonaError`` is raised again."""
        if isinstance(error, MonaError):
            raise error
        with contextlib.suppress(Exception):  # a broken log handler: still not the app's
            limited(40, f"guard:{self.what}", "mona_middleware: %s", self.what, exc_info=error)
