"""The one shared exporter: its lifecycle (one ``State``), and the stages it wires.

Data travels through ``Admission`` (the bounded queue, backpressure), the ``Batcher``
(its only consumer), the ``SenderPool`` (threads, the ledger of batches in flight) and
``Delivery`` (retries, splitting, the spool, accounting), each with one owner. Threads
start with the first item, never at import; where none may start (interpreter exit, a
uWSGI master) the same stages run on the caller's thread (``State.INLINE``). A forked
child starts afresh, hooks or not: ``enqueue`` compares pids. ``flush``, ``shutdown``
and ``stats`` never wait for a lock the code a signal interrupted may hold.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .._util import forks
from .._util.log import limited, logger
from .._util.signalsafe import OwnedLock, Wakeup
from .._util.stats import ExportStats
from ..config import MonaConfig
from ..transports.base import Transport, WireBatch
from .admission import Admission
from .batcher import WAKE_EVERY, Batcher
from .delivery import Delivery
from .items import FlushMarker
from .selfmetrics import SelfMetrics
from .senders import SenderPool
from .spool import spool_for
from .state import State

__all__ = ["BatchExporter", "State"]

_getpid = os.getpid


_OPEN = State.OPEN
# How long shutdown waits, past its deadline, for the batcher to end the item in hand.
_GRACE = 0.5


def _never() -> bool:
    return False


class BatchExporter:
    """Batches messages from every request and sends them off the request's thread.

    It knows nothing of contexts beyond ``items.ClosedContext``, and nothing of the
    process it runs in: the kill switch is handed in as ``switched_off``.

    >>> from mona_middleware.transports import InMemoryTransport
    >>> exporter = BatchExporter(MonaConfig(), InMemoryTransport())
    >>> exporter.shutdown(1)
    True
    """

    # Whether this process may start threads now; the runtime replaces it where the
    # host forbids (a uWSGI master that forks without hooks). Asked only by start().
    threads_allowed: Callable[[], bool] = staticmethod(lambda: True)

    def __init__(
        self, config: MonaConfig, transport: Transport, switched_off: Callable[[], bool] = _never
    ) -> None:
        self.config = config
        self.transport = transport
        self._switched_off = switched_off
        self._reset()

    def _reset(self) -> None:
        config, off = self.config, self._switched_off
        self.stats = ExportStats()
        self.spool = spool_for(config, self.transport, self.stats)
        self.delivery = Delivery(config, self.transport, self.stats, self.spool, off)
        self._wakeup = Wakeup()
        self.admission = admission = Admission(
            config.queue_size, config.request_queue_wait, WAKE_EVERY, self._wakeup, self.stats
        )
        admission.not_open, admission.forked = self._not_open, self._forked
        admission.refusal = self._refusal
        self.pool = SenderPool(self.delivery, self.stats, config.sender_threads)
        metrics = SelfMetrics(config, self.snapshot, self.stats, off)
        self.batcher = Batcher(config, self.stats, admission, self.pool, metrics)
        admission.wake_at, self._queue = self.batcher.wake_at, admission.queue
        # The hot path is admission's: callers reach it through these two names.
        self.enqueue = admission.enqueue
        self.enqueue_explicit = admission.enqueue_explicit
        self._transition_lock = OwnedLock()  # guards the state's transitions (start, shutdown)
        self._closed = threading.Event()
        self._flushing: set[int] = set()  # threads waiting in flush()
        self._stopping = False  # a shutdown holds the lifecycle lock
        self._thread: threading.Thread | None = None
        self.pid = os.getpid()  # the process whose threads these are

    # -- what admission asks of the exporter ---------------------------------------------

    @property
    def _state(self) -> State:  # kept on admission, whose hot path reads it
        return self.admission.state

    @_state.setter
    def _state(self, state: State) -> None:
        self.admission.state = state

    def _refusal(self) -> str | None:
        """Why a producer must not wait for room (None: it may)."""
        current = threading.current_thread()
        if current is self._thread or self.pool.owns(current):
            return "queue full"  # an exporter thread (a hook exporting) cannot wait for itself
        if self._state is State.CLOSED:
            return "exporter shut down"
        if sys.is_finalizing() or self._thread is None or not self._thread.is_alive():
            return "queue full"  # no batcher takes from it any more: never hang
        return None

    def _not_open(self, item: Any) -> bool:
        """``item`` is queued but no thread runs: start them, or send it here, or (shut
        down) take it back and count it. Whoever takes it from the queue accounts for it."""
        if self._state is State.UNOPENED and self.start() is None:
            return True  # a start under way on this thread will take it
        state = self._state
        if state is State.INLINE:
            self.batcher.drive()
        elif state is _OPEN:
            self._wakeup.set()
        elif self.admission.withdraw(item):
            return self.admission.drop([item], "exporter shut down")
        return True

    def _forked(self, item: Any) -> bool:
        """``item`` came in a process forked without Python's at-fork hooks (uWSGI's
        default): start afresh here, then queue it."""
        forks.renew_if_forked()  # ids, locks, and the process's exporter (maybe this one)
        if self.pid != _getpid():  # an exporter the process does not own
            self.after_fork()
        limited(
            logging.WARNING,
            "hookless_fork",
            "mona_middleware: this process was forked without Python's at-fork hooks; "
            "the exporter started afresh (under uWSGI set enable-threads and "
            "py-call-osafterfork, or lazy-apps)",
        )
        if isinstance(item, list):  # an export_batch chunk
            return self.admission.enqueue_explicit(item)
        return self.admission.enqueue(item)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> bool | None:
        """Start the threads now (they otherwise start with the first item). False once
        shut down or while the interpreter exits; None when a start is under way here."""
        if self._state is _OPEN or self._state is State.INLINE:
            return True
        if not self._transition_lock.acquire(5.0):
            return None
        try:
            if self._state is not State.UNOPENED:
                return self._state is not State.CLOSED
            if sys.is_finalizing():
                return False  # starting a thread while the interpreter exits would hang
            self._state = self._start_threads()
            return True
        finally:
            self._transition_lock.release()

    def _start_threads(self) -> State:
        main = threading.main_thread()
        # The host says no threads now (a uWSGI master about to fork without hooks), or
        # the main thread runs the atexit hooks (threading marks it stopped): a hook
        # registered now never runs, and Python 3.12+ starts no thread.
        if not self.threads_allowed() or (
            threading.current_thread() is main and not main.is_alive()
        ):
            return State.INLINE
        thread = threading.Thread(
            target=self.batcher.run, args=(self._wakeup,), name="mona-batcher", daemon=True
        )
        try:
            self.pool.start()  # first: the batcher hands its batches to these threads
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            return State.INLINE
        self._thread = thread
        logger.debug("mona_middleware: exporter started, sending to %s", self.transport.describe())
        return _OPEN

    def flush(self, timeout: float = 5.0) -> bool:
        """Process everything queued so far: sent, refused, spooled or counted.

        True when that finished within ``timeout``. Backoff waits are cut short so a
        backend that is back gets the data now; a server's ``Retry-After`` is honoured.
        """
        state = self._state
        if state is State.INLINE:
            self.batcher.drive()
        if state is not _OPEN:
            return not self._queue
        marker = FlushMarker()
        self.admission.put_marker(marker)
        self.delivery.wake()
        me = threading.get_ident()
        if me in self._flushing:  # a signal handler interrupted this thread's own flush:
            return False  # that one waits; waiting here too would nest without end
        self._flushing.add(me)
        try:
            return marker.done.wait(max(timeout, 0))
        finally:
            self._flushing.discard(me)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, stop the threads and close the transport, all within ``timeout`` seconds.

        What was never sent goes to the spool, or is counted as dropped; a batch still
        unanswered at the deadline is counted apart (the backend may have stored it).
        """
        timeout = self.config.shutdown_timeout if timeout is None else max(timeout, 0)
        deadline = time.monotonic() + timeout
        if self.batcher.drives_here():  # a handler interrupted this thread's own send:
            return False  # it goes on when the handler returns; shutting down under it would not
        # Wait for another thread's start (it ends in moments) whatever the timeout.
        wait = timeout if self._stopping else max(timeout, 5.0)
        if not self._transition_lock.acquire(wait):  # another thread's shutdown did not end in
            return self._closed.is_set()  # time, or a handler interrupted this thread's
        try:
            state, flushed = self._state, True
            if state is State.CLOSED:
                return True
            self._stopping = True
            if state is _OPEN:
                flushed = self._stop_threads(timeout, deadline)
            elif state is State.INLINE:
                self.batcher.drive()
            self._state = State.CLOSED
            leftover = self._abandon()
            _quietly("closing the transport", self.transport.close)
            self._closed.set()
            return flushed and not leftover
        finally:
            self._transition_lock.release()

    def _stop_threads(self, timeout: float, deadline: float) -> bool:
        flushed = self.flush(timeout * 0.8)  # keep a fifth of the time for the spool
        self._state = State.CLOSED  # from here on, enqueue() takes its item back, counted
        self.admission.let_in()  # producers waiting for room: there will be none
        self.batcher.finishing = True
        self.delivery.wake(stopping=True)  # retry waits end: those batches go to the spool
        _quietly("interrupting the transport", self.transport.interrupt)
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0))
        self.pool.stop(deadline)
        return flushed

    def _abandon(self) -> int:
        """At the deadline: hand back what was never sent, count what is unanswered."""
        leftover = self.pool.close()  # a batcher blocked on busy senders is let go
        items = self.admission.take_all()
        if self._thread is not None:  # with the queue empty its turn ends at once: what
            self._thread.join(_GRACE)  # it holds is then accounted for before we return
        if self._thread is None or not self._thread.is_alive():
            batch = self.batcher.leftovers(items)
        else:  # the batcher outlived its join: its own partial batch stays its own
            batch = WireBatch(m for item in items for m in self.batcher.prepare(item))
        self.pool.hand_back([batch])
        leftover += len(batch)
        if leftover:
            logger.warning(
                "mona_middleware: at shutdown, %d message(s) were not sent in time "
                "(stats() says which were spooled, dropped or left unanswered)",
                leftover,
            )
        return leftover

    def after_fork(self) -> None:
        """In a forked child: forget the parent's queue and threads, start afresh on use."""
        self._reset()
        self.transport.after_fork()

    def snapshot(self) -> dict[str, Any]:
        """``stats()`` for this exporter, with the live queue depth; takes no lock."""
        data = self.stats.snapshot()
        # Closed contexts not yet prepared, plus prepared messages waiting for a full POST.
        data["queued"] = self.batcher.waiting() + self.admission.depth()
        data["in_flight"] = self.pool.in_flight()
        data["spool"] = None if self.spool is None else self.spool.summary()
        data["transport"] = self.transport.describe()
        data["state"] = self._state.value
        return data


def _quietly(what: str, call: Callable[[], object]) -> None:
    try:
        call()
    except Exception:  # the transport's own bug: logged, and shutdown goes on
        logger.exception("mona_middleware: %s failed", what)
