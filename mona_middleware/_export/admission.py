"""Admission: the bounded queue between the app's threads and the batcher.

What enters: closed contexts (``enqueue``, the hot path: a pid check, a deque append and
a state check), chunks of ``export_batch``, flush markers and self-metrics reports. With
the queue full, a producer waits for room (backpressure): at most
``request_queue_wait`` for a live web request, else until there is room.

No lock is shared with the batcher or with ``flush``/``shutdown``/``stats``: the queue is
a ``deque`` (append and popleft are atomic), a waiting producer sleeps on its own
``SimpleQueue``, and the batcher lets producers in by putting into those queues. So no
signal handler, and no consumer, ever waits for a producer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

from .._util.log import limited
from .._util.signalsafe import Wakeup
from .._util.stats import ExportStats
from .items import FlushMarker
from .prepare import message_count
from .state import State

__all__ = ["Admission"]

# A producer waiting for room looks again this often even without a wake-up (a missed
# one, a shutdown): the wait never depends on one signal arriving.
_ROOM_POLL = 0.05
_OPEN = State.OPEN
_getpid = os.getpid


def _none(*_: Any) -> Any:
    return None


class Admission:
    """The queue, its bound, and the producers waiting for room in it.

    What only the exporter knows comes as callables: ``not_open(item)`` for an item
    queued while no thread runs, ``forked(item)`` for one queued in a child forked
    without hooks, ``refusal()`` for why a producer must not wait for room.
    """

    def __init__(
        self,
        queue_size: int,
        request_wait: float,
        wake_at: int,
        wakeup: Wakeup,
        stats: ExportStats,
    ) -> None:
        self.queue: deque[Any] = deque()
        self.max = queue_size
        self.request_wait = request_wait
        self.wake_at = wake_at
        self.wakeup = wakeup
        self.stats = stats
        self.state = State.UNOPENED  # the exporter's, kept here for the hot path
        self.pid = os.getpid()  # the process whose queue this is
        self.not_open: Callable[[Any], bool] = _none
        self.forked: Callable[[Any], bool] = _none
        self.refusal: Callable[[], str | None] = _none
        # Waiting producers are let in once the batcher has made this much room: enough
        # for a burst of appends per wake-up, never more than half the queue.
        self.room_at = max(queue_size - 64, queue_size // 2)
        self.waiters: deque[SimpleQueue[None]] = deque()
        # export_batch messages queued, capped at queue_size too, so that a call of any
        # size streams through in chunks: added by producers (under their own lock, which
        # nobody else takes), taken by the batcher alone.
        self._explicit_lock = threading.RLock()  # reentrant: a handler may export_batch too
        self._explicit_added = 0
        self.explicit_taken = 0

    # -- the hot path -----------------------------------------------------------------

    def enqueue(self, item: Any) -> bool:
        """Queue a closed context; never raises. With the queue full it waits for room: at
        most ``request_queue_wait`` when ``item.in_request`` (then drops, counted), else
        until there is room."""
        if self.pid != _getpid():
            return self.forked(item)
        pending = self.queue
        if len(pending) >= self.max:
            return self._enqueue_when_room(item)
        pending.append(item)
        if self.state is not _OPEN:
            return self.not_open(item)
        if len(pending) >= self.wake_at and not self.wakeup.pending:
            self.wakeup.set()
        return True

    def enqueue_explicit(self, batch: Any) -> bool:
        """Queue one chunk of ``export_batch``; waits while ``queue_size`` messages of
        earlier chunks are still queued (a first chunk always goes in)."""
        if self.pid != _getpid():
            return self.forked(batch)
        refused = self.put_explicit(batch)
        if refused is not None:
            return self.drop([batch], refused)
        return self.state is _OPEN or self.not_open(batch)

    def _enqueue_when_room(self, item: Any) -> bool:
        try:
            in_request = bool(item.in_request)
        except Exception:
            in_request = True  # cannot tell: a live request must never wait long
        queue, limit = self.queue, self.max
        refused = self.wait_for_room(in_request, lambda: len(queue) >= limit)
        if refused is not None:
            return self.drop([item], refused)
        queue.append(item)
        if self.state is not _OPEN:
            return self.not_open(item)
        self.wakeup.set()
        return True

    def put_marker(self, marker: FlushMarker) -> None:
        """A flush marker goes in whatever the bound: it holds no data."""
        self.queue.append(marker)
        self.wakeup.set()

    def drop(self, items: list[Any], reason: str) -> bool:
        """Count ``items`` as dropped for ``reason``; False, for the caller to return."""
        count = message_count(items)
        self.stats.drop(reason, count)
        limited(
            logging.WARNING,
            f"drop:{reason}",
            "mona_middleware: dropped %d message(s): %s",
            count,
            reason,
        )
        return False

    # -- producers --------------------------------------------------------------------

    def wait_for_room(self, in_request: bool, full: Callable[[], bool]) -> str | None:
        """Backpressure, off the hot path: None once ``full()`` is false, else why not
        (``refusal()`` says why waiting cannot help: shut down, no batcher takes from the queue)."""
        deadline = time.monotonic() + self.request_wait if in_request else None
        self.stats.add("queue_waits")
        waiter: SimpleQueue[None] = SimpleQueue()
        while full():
            why = self.refusal()
            if why is not None:
                return why
            wait = _ROOM_POLL
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return "queue full"
            self.waiters.append(waiter)
            self.wakeup.set()  # the batcher makes room
            with contextlib.suppress(Empty):
                waiter.get(timeout=min(wait, _ROOM_POLL))
        return None

    def put_explicit(self, batch: Any) -> str | None:
        """Queue a chunk of ``export_batch``, waiting while ``queue_size`` messages of
        earlier chunks are still queued (a first chunk always goes in); None when queued."""
        size = len(batch)
        with self._explicit_lock:
            if self._explicit_full(size):
                why = self.wait_for_room(False, lambda: self._explicit_full(size))
                if why is not None:
                    return why
            self._explicit_added += size
            self.queue.append(batch)
        self.wakeup.set()
        return None

    def _explicit_full(self, size: int) -> bool:
        queued = self._explicit_added - self.explicit_taken
        return queued > 0 and queued + size > self.max

    def withdraw(self, item: Any) -> bool:
        """Take ``item`` back out of the queue; False when a consumer took it first (and
        accounts for it). ``deque.remove`` compares by identity here, atomically."""
        try:
            self.queue.remove(item)
        except ValueError:
            return False
        return True

    # -- the batcher ----------------------------------------------------------------------

    def let_in(self) -> None:
        """There is room: wake every waiting producer."""
        waiters = self.waiters
        while waiters:
            try:
                waiters.popleft().put(None)
            except IndexError:
                break

    def took_explicit(self, size: int) -> None:
        self.explicit_taken += size
        self.let_in()

    def take_all(self) -> list[Any]:
        """Everything queued, markers aside (shutdown's leftovers); popleft, not iteration:
        a producer may still append."""
        taken: list[Any] = []
        queue = self.queue
        while True:
            try:
                item = queue.popleft()
            except IndexError:
                return taken
            if type(item) is FlushMarker:
                item.done.set()
            else:
                taken.append(item)

    def depth(self) -> int:
        """Items queued, markers aside; no lock (``stats()``)."""
        return sum(1 for item in list(self.queue) if type(item) is not FlushMarker)
