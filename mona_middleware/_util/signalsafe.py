"""Synchronisation a signal handler can use without waiting for its own thread.

Waking threads takes no lock here, so that any thread, and a signal handler, can do it.

``threading.Event.set`` and ``Condition.notify`` take a plain lock: a signal handler that
wakes the exporter while the code it interrupted was waking it too would wait for its own
thread for ever (a SIGTERM handler that flushes, a process that never exits). These
use ``queue.SimpleQueue``, whose ``put`` is reentrant (written in C for exactly this: it
may be called from ``__del__``, weakref callbacks and signal handlers).
"""

from __future__ import annotations

import contextlib
import threading
from queue import Empty, SimpleQueue

__all__ = ["OwnedLock", "WakeAll", "Wakeup"]


class Wakeup:
    """Wakes one waiting thread; wake-ups that come while it is busy are folded into one."""

    __slots__ = ("_queue", "pending")

    def __init__(self) -> None:
        self._queue: SimpleQueue[None] = SimpleQueue()
        # Read without a lock by callers that wake often (only the first wakes); a race
        # costs a spare wake-up, never a missed one: the waiter clears it before emptying its queue.
        self.pending = False

    def set(self) -> None:
        self.pending = True
        self._queue.put(None)

    def wait(self, timeout: float | None) -> bool:
        """Block until woken or ``timeout`` passes; True when woken."""
        try:
            self._queue.get(timeout=timeout)
        except Empty:
            return False
        self.pending = False
        try:
            while True:
                self._queue.get_nowait()
        except Empty:
            pass
        return True


class WakeAll:
    """Wakes every thread sleeping on it at once (``wake_all``), from any thread or handler.

    Each sleeping thread has its own ``SimpleQueue``; ``generation`` counts the wake-ups,
    so a sleeper can tell a wake-up from its timeout.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._sleepers: dict[int, SimpleQueue[None]] = {}

    def wake_all(self) -> None:
        self.generation += 1  # two racing wakers may count one: still a change
        for waiter in list(self._sleepers.values()):
            waiter.put(None)

    def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a wake-up (even one that came before, since the caller
        read ``generation``) ends it early: callers compare ``generation`` afterwards."""
        waiter = self._sleepers.get(threading.get_ident())
        if waiter is None:
            waiter = self._sleepers.setdefault(threading.get_ident(), SimpleQueue())
        with contextlib.suppress(Empty):
            waiter.get(timeout=max(seconds, 0))


class OwnedLock:
    """A lock that remembers its owner: a signal handler running on the owning thread is
    told so at once (``acquire`` returns False) instead of waiting for itself for ever."""

    __slots__ = ("_lock", "_owner")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    def acquire(self, timeout: float) -> bool:
        """Within ``timeout``; False at once when this thread holds it already.

        A free lock is taken without blocking first: on an event loop (the first
        request's context starting the exporter) that is no blocking call at all.
        """
        me = threading.get_ident()
        if self._owner == me:
            return False
        lock = self._lock
        if not lock.acquire(False) and not (timeout > 0 and lock.acquire(True, timeout)):
            return False
        self._owner = me
        return True

    def release(self) -> None:
        self._owner = None
        self._lock.release()

    def owned_here(self) -> bool:
        return self._owner == threading.get_ident()
