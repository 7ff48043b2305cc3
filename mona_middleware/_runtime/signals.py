"""Flushing on the shutdown paths ``atexit`` alone misses.

``atexit`` covers a normal exit, ``sys.exit`` and gunicorn/uvicorn workers (they turn
SIGTERM into a clean exit). A plain ``python app.py`` killed by SIGTERM dies without
running ``atexit``; ``flush_on_sigterm`` turns that SIGTERM into ``SystemExit`` so the
main thread unwinds and ``atexit`` flushes, unless something else already owns SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from .._util.log import logger

__all__ = ["EXIT_CODE_SIGTERM", "exits_on_sigterm", "flush_on_sigterm"]

EXIT_CODE_SIGTERM = 128 + signal.SIGTERM
_installed = False


def flush_on_sigterm() -> bool:
    """Make SIGTERM exit cleanly (so ``atexit`` flushes) if nobody else handles it.

    Only from the main thread, and only when SIGTERM still has its default action: a
    server with its own handler (gunicorn, uvicorn) is left alone.
    """
    global _installed
    if _installed:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return False
    _installed = True
    logger.debug("mona_middleware: SIGTERM will exit through atexit, which flushes")
    return True


def exits_on_sigterm(handler: Any) -> bool:
    """Whether ``handler`` is the one ``flush_on_sigterm`` installs (nobody else's)."""
    return handler is _exit_on_sigterm


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # No I/O or locks in a signal handler: raise, and let atexit flush in normal code.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise SystemExit(EXIT_CODE_SIGTERM)
