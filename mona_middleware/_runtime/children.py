"""Flush in ``multiprocessing`` children before they exit, where ``atexit`` never runs.

A child started by ``multiprocessing`` (a ``Process``, a ``Pool`` worker, with any start
method) leaves with ``os._exit`` once its target returns: ``atexit`` does not run there
(only a spawned child's interpreter runs it, and not when it is terminated). What it
does run is multiprocessing's own exit finalizers (``util._exit_function``, called by
``Process._bootstrap``), so the flush is one of those: a ``util.Finalize`` with an exit
priority, registered in each child (``_bootstrap`` clears the registry a forked child
inherits, then runs the after-fork callbacks, which is where a forked child registers
it again).

``with Pool(...) as pool:`` ends by terminating its workers with SIGTERM, whose default
action kills them with their queue unsent. In a child whose SIGTERM nobody else handles,
SIGTERM raises ``SystemExit`` instead (``signals.flush_on_sigterm``), which unwinds the
worker through those same finalizers. While the flush runs, a further SIGTERM is
ignored, so the flush gets its ``shutdown_timeout`` whole.

``install`` runs when a process's exporter starts: nothing here is on a request's path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable

from .._util.log import logger
from . import signals

__all__ = ["EXIT_PRIORITY", "armed", "install"]

# Finalizers of priority >= 0 run before multiprocessing joins the child's own children
# and before the finalizers without one; among those, higher runs first.
EXIT_PRIORITY = 50


class _Holder:
    """``register_after_fork`` keeps its object weakly: this one lives as long as the module."""


_HOLDER = _Holder()
_flush: Callable[[], object] | None = None
_flush_in_handler: Callable[[], object] | None = None
_armed_pid: int | None = None


def install(
    flush: Callable[[], object], flush_in_handler: Callable[[], object] | None = None
) -> None:
    """Make every ``multiprocessing`` child of this process (and this process, if it is
    one) call ``flush`` before it exits; once per process, later calls do nothing.

    ``flush_in_handler`` (a flush that takes no lock the interrupted code may hold) runs in the
    SIGTERM handler itself, before the exit starts.
    """
    global _flush, _flush_in_handler
    if _flush is not None:
        return
    _flush, _flush_in_handler = flush, flush_in_handler
    import multiprocessing  # here, not at import: only a process that exports pays for it
    from multiprocessing import util

    util.register_after_fork(_HOLDER, _in_forked_child)  # forked children, grandchildren
    if multiprocessing.parent_process() is not None:  # a child that started its own exporter
        _arm()


def armed() -> bool:
    """Whether this process flushes through multiprocessing's finalizers."""
    return _armed_pid == os.getpid()


def _in_forked_child(holder: _Holder) -> None:
    _arm()


def _arm() -> None:
    global _armed_pid
    from multiprocessing import util

    if _armed_pid == os.getpid():
        return
    _armed_pid = os.getpid()
    util.Finalize(None, _flush_before_exit, exitpriority=EXIT_PRIORITY)
    if signals.flush_on_sigterm() and signals.exits_on_sigterm(signal.getsignal(signal.SIGTERM)):
        signal.signal(signal.SIGTERM, _flush_then_exit)


def _flush_then_exit(signum: int, frame: object) -> None:
    """SIGTERM in a child: deliver first, then exit through the finalizers.

    Raising at once is not enough: the SIGTERM of ``Pool.terminate()`` may land while
    the worker is already leaving (its last task done, a sentinel received), inside
    multiprocessing's exit path but before the flush finalizer; a ``SystemExit`` raised
    there skips the remaining finalizers, and what the worker holds is lost.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the delivery gets its time whole
    try:
        if _flush_in_handler is not None:
            _flush_in_handler()
    except Exception:
        logger.exception("mona_middleware: the flush on SIGTERM failed")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # delivered: a second SIGTERM kills
    raise SystemExit(signals.EXIT_CODE_SIGTERM)


def _flush_before_exit() -> None:
    flush = _flush
    if flush is None:
        return
    in_main = threading.current_thread() is threading.main_thread()
    previous = None
    if in_main:  # a pool's terminate() during the flush must not cut it short
        try:
            previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        except (ValueError, OSError):
            in_main = False
    try:
        flush()
    except Exception:
        logger.exception("mona_middleware: the flush before this child's exit failed")
    finally:
        if in_main and previous is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGTERM, previous)
