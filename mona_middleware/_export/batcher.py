"""The batcher: the queue's only consumer, turning closed contexts into batches.

It wakes every ``WAKE_EVERY`` queued contexts (or when ``flush`` asks), prepares what
is queued into wire messages, and submits a batch once it holds ``batch_size`` messages
or its first message is ``flush_interval`` old. It runs on its own thread, or, when no
thread may run (interpreter exit, a uWSGI master), a turn at a time on the caller's.
"""

from __future__ import annotations

import time
from typing import Any

from .._util.log import logger
from .._util.signalsafe import OwnedLock, Wakeup
from .._util.stats import ExportStats
from ..config import MonaConfig
from ..transports.base import WireBatch
from .admission import Admission
from .items import ExplicitBatch, FlushMarker
from .prepare import message_count, prepare
from .selfmetrics import SelfMetrics
from .senders import SenderPool
from .wire import context_wire, encode_all

__all__ = ["WAKE_EVERY", "Batcher"]

# The batcher wakes every this many queued contexts (or batch_size, if smaller) and
# prepares them, while the POST still waits for batch_size messages: short turns with
# the GIL (a request waits ~0.3 ms, not the 2.5 ms of 500 contexts at once), and fewer
# closed contexts alive for the garbage collector to scan.
WAKE_EVERY = 64


class Batcher:
    """Prepares queued items and submits full or due batches to the sender pool."""

    def __init__(
        self,
        config: MonaConfig,
        stats: ExportStats,
        admission: Admission,
        pool: SenderPool,
        metrics: SelfMetrics,
    ) -> None:
        self.config = config
        self.stats = stats
        self.admission = admission
        self.pool = pool
        self.metrics = metrics
        self.wake_at = min(config.batch_size, WAKE_EVERY)
        self.finishing = False  # shutdown: submit what is left and stop once empty
        self._drive_lock = OwnedLock()  # one thread at a time drives turns (``drive``)
        self._batch: list[dict[str, Any]] = []  # prepared, waiting for a full POST
        self._due = 0.0  # when it goes anyway (flush_interval after its first message)
        self._next_probe = 0.0

    def run(self, wakeup: Wakeup) -> None:
        """The batching thread's loop, until ``finishing`` and nothing is left."""
        spool = self.pool.spool
        if spool is not None:
            self.pool.offer_spool_round()  # what an earlier process left in the spool
        interval = self.config.flush_interval
        queue = self.admission.queue
        while True:
            wait = max(self._due - time.monotonic(), 0) if self._batch else interval
            wakeup.wait(wait)
            try:
                self.turn()
                report = self.metrics.due_report()
                if report is not None:
                    queue.append(report)
                if spool is not None and self._spool_due():
                    self.pool.offer_spool_round()
            except Exception:
                logger.exception("mona_middleware: unexpected error in the batching thread")
            if self.finishing and not queue and not self._batch:
                return

    def _spool_due(self) -> bool:
        """Probe the backend for the spool now and then, even with no fresh traffic."""
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + self.config.retry_max_backoff
        return self.pool.spool.pending()[0] > 0  # type: ignore[union-attr]  # asked with one

    def drive(self) -> None:
        """Turns on the caller's thread until the queue is empty (no batching thread may
        run). One thread at a time: another already driving takes what this one queued,
        and so does the code a signal handler interrupted."""
        while self._drive_lock.acquire(0):
            try:
                self.finishing = True
                self.turn()
            except Exception:
                logger.exception("mona_middleware: could not send on this thread")
            finally:
                self._drive_lock.release()
            if not self.admission.queue:
                return

    def drives_here(self) -> bool:
        """Whether this thread is in ``drive`` (a signal handler interrupted it)."""
        return self._drive_lock.owned_here()

    def turn(self) -> None:
        """Prepare everything queued; submit full batches, and a partial one when due."""
        contexts = 0  # counted once per turn: no stats call per context
        try:
            contexts = self._take_queue()
        finally:
            if contexts:
                self.stats.add("contexts", contexts)

    def _take_queue(self) -> int:
        size = self.config.batch_size
        admission = self.admission
        pending, room_at = admission.queue, admission.room_at
        config, stats = self.config, self.stats
        contexts = 0
        while pending:
            item = pending.popleft()
            kind = type(item)
            if kind is ExplicitBatch:
                admission.took_explicit(len(item))
                messages = self.prepare(item)
            elif kind is FlushMarker:
                self.submit_partial()
                self.pool.arm(item)
                continue
            else:
                if admission.waiters and len(pending) <= room_at:
                    admission.let_in()
                contexts += 1
                try:  # a closed context: prepare()'s dispatch, skipped
                    messages = context_wire(item, config, stats)
                except Exception:
                    messages = self._prepare_failed(item)
            if not messages:
                continue
            if not self._batch:
                self._due = time.monotonic() + config.flush_interval
            self._batch.extend(messages)
            while len(self._batch) >= size:
                full, self._batch = self._batch[:size], self._batch[size:]
                self.pool.submit(WireBatch(full))
        if admission.waiters:
            admission.let_in()
        if self._batch and (self.finishing or time.monotonic() >= self._due):
            self.submit_partial()
        return contexts

    def waiting(self) -> int:
        """Prepared messages waiting for a full batch (``stats()``; no lock)."""
        return len(self._batch)

    def submit_partial(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self.pool.submit(WireBatch(batch))

    def prepare(self, item: Any) -> list[dict[str, Any]]:
        """Messages for one item (an explicit batch here, or any item at shutdown)."""
        try:
            if type(item) is ExplicitBatch:
                return encode_all(prepare(item, self.config, self.stats))
            return context_wire(item, self.config, self.stats)
        except Exception:
            return self._prepare_failed(item)

    def _prepare_failed(self, item: Any) -> list[dict[str, Any]]:
        self.stats.drop("internal error preparing messages", message_count([item]))
        logger.exception("mona_middleware: could not prepare messages")
        return []

    def leftovers(self, items: list[Any]) -> WireBatch:
        """The partial batch and ``items`` (taken from the queue at shutdown) as one batch.

        Call only once the batching thread has ended (or never ran): the partial batch is
        its own.
        """
        messages, self._batch = self._batch, []
        for item in items:
            if type(item) is not ExplicitBatch:
                self.stats.add("contexts")
            messages.extend(self.prepare(item))
        return WireBatch(messages)
