"""The package logger, a rate limiter so a failing backend cannot flood the app's logs,
and the one guard that keeps the package's own failures out of the app."""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..errors import MonaError, MonaExportError
from . import forks

__all__ = [
    "Guard",
    "RateLimitedLog",
    "limited",
    "logger",
    "refuse",
    "safe_repr",
    "set_logger",
]


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
    """Logs each distinct ``key`` at most once per ``interval`` seconds, keeping few keys.

    The next line logged for a key says how many were suppressed in between, so the
    count is never lost even when the lines are. Keys are bounded, by kind (the text
    before a key's first ``:``) so that a flood of one kind (a NaN under a new field name
    in every request) cannot silence another (``drop:queue full``): at most
    ``keys_per_kind`` keys of one kind and ``max_kinds`` kinds are kept, those logged
    longest ago go first once their interval is over. A new key beyond that is *folded*:
    not logged on its own, but counted, and one line per interval says how many messages
    were folded and about how many distinct problems they were (estimated in 8 KiB by
    linear counting: exact enough for a log line, bounded whatever the input).
    """

    def __init__(
        self,
        interval: float = 60.0,
        log: logging.Logger = logger,
        *,
        keys_per_kind: int = 100,
        max_kinds: int = 200,
    ) -> None:
        self._interval = interval
        self._log = log
        self._keys_per_kind = keys_per_kind
        self._max_kinds = max_kinds
        # Reentrant: a signal handler that logs while the code it interrupted was logging
        # must not wait for its own thread.
        self.lock = threading.RLock()
        # kind -> key -> (last logged, suppressed since), in the order they were logged
        self._kinds: dict[str, OrderedDict[str, tuple[float, int]]] = {}
        self._folded = 0  # messages not logged because their key was not kept
        self._folded_bits = bytearray(_FOLD_BITS // 8)  # which keys among them (hashed)
        self._fold_since: float | None = None  # when the first of them was folded
        _instances.add(self)

    def __call__(self, level: int, key: str, msg: str, *args: object, **kwargs: Any) -> bool:
        """Log ``msg % args`` unless ``key`` was logged recently; True when it was logged."""
        now = time.monotonic()
        if len(key) > _MAX_KEY:  # a key made from a user's value: bounded too
            key = f"{key[:_MAX_KEY]}#{hash(key) & 0xFFFFFFFF:x}"
        kind = key.partition(":")[0]
        with self.lock:
            try:
                summary = self._summary(now) if self._fold_since is not None else None
                keys = self._kinds.get(kind)
                entry = None if keys is None else keys.get(key)
                if keys is not None and entry is not None:
                    last, suppressed = entry
                    if now - last < self._interval:
                        keys[key] = (last, suppressed + 1)
                        logged = False
                    else:
                        keys[key] = (now, 0)
                        keys.move_to_end(key)
                        logged = True
                else:
                    suppressed = 0
                    keys = self._table_with_space(kind, keys, now)
                    if keys is None:
                        if self._fold_since is None:  # the first of a window: say so, once
                            summary = (
                                "mona_middleware: too many different problems of one kind (%r) "
                                "at once; new ones are counted, not logged one by one, and "
                                "summed up within %d s",
                                kind,
                                round(self._interval),
                            )
                        self._fold(key, 1, now)
                        logged = False
                    else:
                        keys[key] = (now, 0)
                        logged = True
            except Exception:  # a signal handler logged in the middle of this: log it
                summary, logged, suppressed = None, True, 0
        if summary is not None:
            self._log.log(logging.WARNING, *summary)
        if not logged:
            return False
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._log.log(level, msg, *args, **kwargs)
        return True

    def _table_with_space(
        self, kind: str, keys: OrderedDict[str, tuple[float, int]] | None, now: float
    ) -> OrderedDict[str, tuple[float, int]] | None:
        """The kind's table with room for one more key, or None (the key is folded)."""
        if keys is None:
            if len(self._kinds) >= self._max_kinds:
                self._expire_kinds(now)
                if len(self._kinds) >= self._max_kinds:
                    return None
            keys = self._kinds[kind] = OrderedDict()
            return keys
        if len(keys) < self._keys_per_kind:
            return keys
        # The key logged longest ago is first: forget it once its interval is over (it
        # would be logged again anyway), its suppressed count going into the next summary.
        while keys:
            oldest, (last, suppressed) = next(iter(keys.items()))
            if now - last < self._interval:
                break
            del keys[oldest]
            if suppressed:
                self._fold(oldest, suppressed, now)
            if len(keys) < self._keys_per_kind:
                return keys
        return None

    def _expire_kinds(self, now: float) -> None:
        for kind in list(self._kinds):
            keys = self._kinds[kind]
            while keys:
                oldest, (last, suppressed) = next(iter(keys.items()))
                if now - last < self._interval:
                    break
                del keys[oldest]
                if suppressed:
                    self._fold(oldest, suppressed, now)
            if not keys:
                del self._kinds[kind]

    def _fold(self, key: str, count: int, now: float) -> None:
        bit = hash(key) % _FOLD_BITS
        self._folded_bits[bit >> 3] |= 1 << (bit & 7)
        self._folded += count
        if self._fold_since is None:
            self._fold_since = now

    def _summary(self, now: float, due: bool = False) -> tuple[Any, ...] | None:
        """The line saying what was folded, once its interval is over (then a new count)."""
        since = self._fold_since
        if since is None or (now - since < self._interval and not due):
            return None
        folded, distinct = self._folded, self.folded_problems()
        self._folded, self._fold_since = 0, None
        self._folded_bits = bytearray(_FOLD_BITS // 8)
        return (
            "mona_middleware: %d more log message(s), about %d distinct problem(s), were "
            "not logged one by one in the last %d s (too many different ones at once)",
            folded,
            distinct,
            round(now - since),
        )

    def folded(self) -> tuple[int, int]:
        """(messages, about how many distinct problems) folded since the last summary."""
        with self.lock:
            return self._folded, self.folded_problems()

    def folded_problems(self) -> int:
        """Linear counting: n = -m ln(zero bits / m), from the bits the folded keys set."""
        zeros = _FOLD_BITS - sum(bin(byte).count("1") for byte in self._folded_bits)
        return round(-_FOLD_BITS * math.log(max(zeros, 1) / _FOLD_BITS))

    def summarize(self) -> bool:
        """Log the summary of what was folded now, if anything was; True when it did."""
        with self.lock:
            summary = self._summary(time.monotonic(), due=True)
        if summary is None:
            return False
        self._log.log(logging.WARNING, *summary)
        return True

    def keys(self) -> int:
        """How many keys are kept now (bounded: ``keys_per_kind`` x ``max_kinds``)."""
        with self.lock:
            return sum(len(keys) for keys in self._kinds.values())

    def reset(self) -> None:
        with self.lock:
            self._kinds.clear()
            self._folded, self._fold_since = 0, None
            self._folded_bits = bytearray(_FOLD_BITS // 8)

    def renew_lock(self) -> None:
        """A thread that held the lock at fork does not exist in the child: it never lets go."""
        self.lock = threading.RLock()


# Folded keys are counted in this many bits (8 KiB): about 10,000 distinct ones within
# a percent, a few hundred thousand still roughly.
_FOLD_BITS = 1 << 16
_MAX_KEY = 200


@forks.after_fork_in_child
def _renew_locks() -> None:
    for log in list(_instances):
        log.renew_lock()


@atexit.register
def _summarize_all() -> None:
    """What was folded in the last window is said before the process ends."""
    for log in list(_instances):
        with contextlib.suppress(Exception):
            log.summarize()


_instances: weakref.WeakSet[RateLimitedLog] = weakref.WeakSet()
limited = RateLimitedLog()


def safe_repr(value: object) -> str:
    """``repr(value)``, or what it is when its ``__repr__`` raises: user objects reach log
    lines and error messages, and printing one must never be what fails."""
    try:
        return repr(value)
    except Exception as exc:
        try:
            name = type(value).__qualname__
        except Exception:
            name = "object"
        return f"<{name} whose repr() raised {type(exc).__name__}>"


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
            limited(
                logging.ERROR,
                f"guard:{self.what}",
                "mona_middleware: %s",
                self.what,
                exc_info=error,
            )


def refuse(
    reason: str,
    *,
    raising: bool,
    error: type[MonaError] = MonaExportError,
    count: Callable[[str], object] | None = None,
    key: str | None = None,
    line: str = "mona_middleware: export refused: %s",
    args: tuple[object, ...] | None = None,
) -> bool:
    """The one way a user's mistake is refused (a bad call, a value that cannot work):
    counted, then raised as ``error(reason)`` when the user asked for exceptions
    (``raise_export_exceptions``), else logged at ERROR, at most once a minute per
    ``key`` (``refused:<reason>`` unless given). Returns False, the refused call's answer.

    The counter is the caller's (``count(reason)``): this base layer knows no process.
    ``line % args`` is the log line (``args`` default to ``(reason,)``); the exception
    always carries ``reason``, with no internal exception chained to it.

    >>> refuse("export() takes a dict of fields, got list", raising=False)
    False
    """
    if count is not None:
        count(reason)
    if raising:
        raise error(reason) from None
    limited(
        logging.ERROR,
        f"refused:{reason}" if key is None else key,
        line,
        *((reason,) if args is None else args),
    )
    return False
