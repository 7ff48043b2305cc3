"""The package logger and a rate limiter so a failing backend cannot flood the app's logs."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any


class _PackageLogger:
    """The package's logger, whose name mona_sdk users may set (``MONA_SDK_LOGGER_NAME``).

    Modules import this one object; ``set_logger`` re-points it without re-importing.
    """

    def __init__(self, name: str) -> None:
        self.target = logging.getLogger(name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.target, attribute)


logger: Any = _PackageLogger("mona_middleware")


def set_logger(name: str, level: int | None) -> None:
    """Apply ``logger_name`` and ``log_level`` from the configuration."""
    logger.target = logging.getLogger(name)
    if level is not None:
        logger.target.setLevel(level)


class RateLimitedLog:
    """Logs each distinct ``key`` at most once per ``interval`` seconds.

    The next line logged for a key says how many were suppressed in between, so the
    count is never lost even when the lines are.
    """

    def __init__(self, interval: float = 60.0, log: logging.Logger = logger) -> None:
        self._interval = interval
        self._log = log
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}
        _instances.add(self)

    def __call__(self, level: int, key: str, msg: str, *args: object, **kwargs: Any) -> bool:
        """Log ``msg % args`` unless ``key`` was logged recently; True when it was logged."""
        now = time.monotonic()
        with self._lock:
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
        with self._lock:
            self._last.clear()


def _after_fork_in_child() -> None:
    """A thread that held a lock at fork does not exist in the child: it would never let go."""
    for log in list(_instances):
        log._lock = threading.Lock()


_instances: weakref.WeakSet[RateLimitedLog] = weakref.WeakSet()
if hasattr(os, "register_at_fork"):  # a registration, not a thread: safe at import
    os.register_at_fork(after_in_child=_after_fork_in_child)

limited = RateLimitedLog()
