"""The public front doors to the process's exporter: ``configure``, ``flush``, ``shutdown``,
``stats``, each behind the one guard (``Guard``), so that no value reaches the app as an
exception it did not ask for.

``configure`` raises ``MonaConfigError`` for an option that cannot work, as documented
(a typo is found at start-up); anything else it meets becomes one too, naming the call.
The others never raise: a timeout that is not a number of seconds is logged by type
(never by value) and the default is used. They stay as cheap as the calls they front
and take no lock: a signal handler may call them (see ``_export.admission``).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from .._runtime import process
from .._util.log import Guard, limited
from ..config import MonaConfig
from ..errors import MonaConfigError, MonaError

__all__ = ["configure", "flush", "shutdown", "stats"]

_FLUSH = Guard("could not flush the exporter")
_SHUTDOWN = Guard("could not shut the exporter down")
_STATS = Guard("could not read the exporter's counters")


def configure(**options: Any) -> MonaConfig:
    """Resolve options (then environment, then defaults) and make them the active config.

    An invalid value raises ``MonaConfigError`` naming it. An exporter already running
    is flushed and shut down first, so nothing it holds is lost.
    """
    try:
        return process.configure(**options)
    except MonaError:
        raise
    except Exception as exc:  # a value whose own methods raise while being read
        raise MonaConfigError(
            f"configure() could not read its options: {type(exc).__name__} raised"
        ) from None


def flush(timeout: float = 5.0) -> bool:
    """Send everything exported so far; True when the backend answered it all in time."""
    if (type(timeout) is not float and type(timeout) is not int) or not 0 <= timeout < 1e9:
        timeout = _seconds(timeout, 5.0, "flush")
    try:
        return process.flush(timeout)
    except Exception as exc:
        _FLUSH.caught(exc)
        return False


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop the exporter (within ``timeout``, else ``shutdown_timeout``); a later
    export starts a new one."""
    if timeout is not None:
        timeout = _seconds(timeout, None, "shutdown")
    try:
        return process.shutdown(timeout)
    except Exception as exc:
        _SHUTDOWN.caught(exc)
        return False


def stats() -> dict[str, Any]:
    """Counters of the current exporter: sent, failed, dropped by reason, queued."""
    try:
        return process.stats()
    except Exception as exc:
        _STATS.caught(exc)
        return {}


def _seconds(value: Any, default: float | None, call: str) -> Any:
    """``value`` as seconds to wait: negative is 0, past ``threading.TIMEOUT_MAX`` (or
    infinite) is that; anything else (not a number, NaN) is ``default``, logged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except (OverflowError, ValueError, TypeError):  # an int too large, a hostile subclass
            seconds = math.inf
        if not math.isnan(seconds):
            return min(max(seconds, 0.0), threading.TIMEOUT_MAX)
    limited(
        logging.WARNING,
        f"timeout:{call}",
        "mona_middleware: %s(timeout=...) takes a number of seconds, got %s; using %s",
        call,
        "NaN" if isinstance(value, float) else type(value).__name__,
        "the default" if default is None else default,
    )
    return default
