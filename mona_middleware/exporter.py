"""The one shared exporter: a bounded queue, a batching thread, a pool of sender threads.

The request thread only appends to a deque. The batching thread wakes when a batch is
waiting or ``flush_interval`` passes, turns closed contexts into wire messages and hands
batches to sender threads, which encode and send them. Threads start on first use,
never at import, and a forked child starts its own (see ``after_fork``).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import deque
from typing import Any

from ._log import limited, logger
from ._stats import ExportStats
from .config import MonaConfig
from .prepare import message_count, prepare
from .transports.base import SendResult, Transport

NEW, RUNNING, STOPPED = "new", "running", "stopped"


class _FlushMarker:
    """Put in the queue by ``flush``: done when every batch before it has been answered."""

    __slots__ = ("done", "upto")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.upto = -1


class BatchExporter:
    """Batches messages from every request and sends them off the request's thread.

    >>> from mona_middleware.transports import InMemoryTransport
    >>> exporter = BatchExporter(MonaConfig(), InMemoryTransport())
    >>> exporter.shutdown(1)
    True
    """

    def __init__(self, config: MonaConfig, transport: Transport) -> None:
        self.config = config
        self.transport = transport
        self._reset()

    def _reset(self) -> None:
        self.stats = ExportStats()
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._wake_pending = False
        self._state = NEW
        self._lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue(maxsize=self.config.sender_threads * 2)
        self._answered = threading.Condition()
        self._inflight: dict[int, list[dict[str, Any]]] = {}
        self._markers: list[_FlushMarker] = []
        self._seq = 0
        self._stopping = False
        self._finish = False
        self._stopped = threading.Event()
        self._batcher: threading.Thread | None = None
        self._senders: list[threading.Thread] = []
        self._pid = os.getpid()

    # -- the request's side: this is the hot path ------------------------------------

    def enqueue(self, item: Any) -> bool:
        """Queue a closed context or an explicit batch; never blocks, never raises."""
        if self._state is not RUNNING and not self._start():
            return self._drop([item], "exporter shut down")
        pending = self._queue
        if len(pending) >= self.config.queue_size:
            return self._drop([item], "queue full")
        pending.append(item)
        if len(pending) >= self.config.batch_size and not self._wake_pending:
            self._wake_pending = True
            self._wake.set()
        return True

    def _drop(self, items: list[Any], reason: str) -> bool:
        count = message_count(items)
        self.stats.drop(reason, count)
        limited(30, f"drop:{reason}", "mona_middleware: dropped %d message(s): %s", count, reason)
        return False

    # -- lifecycle ----------------------------------------------------------------

    def _start(self) -> bool:
        with self._lock:
            if self._state is RUNNING:
                return True
            if self._state is STOPPED or sys.is_finalizing():
                return False  # starting a thread while the interpreter exits would hang
            self._batcher = threading.Thread(
                target=self._run_batcher, name="mona-batcher", daemon=True
            )
            self._senders = [
                threading.Thread(target=self._run_sender, name=f"mona-sender-{n}", daemon=True)
                for n in range(self.config.sender_threads)
            ]
            for thread in (self._batcher, *self._senders):
                thread.start()
            self._state = RUNNING
            logger.debug(
                "mona_middleware: exporter started, sending to %s", self.transport.describe()
            )
            return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything queued so far; True when the backend answered all of it in time."""
        if self._state is not RUNNING:
            return not self._queue
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(max(timeout, 0))

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, stop the threads and close the transport, all within ``timeout`` seconds.

        What could not be sent in time is counted as dropped ("shutdown timeout").
        """
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + max(timeout, 0)
        with self._lock:
            state = self._state
            if state is not RUNNING:
                self._state = STOPPED
            elif self._stopping:
                state = None  # another thread is shutting down: wait for it
            self._stopping = True
        if state is None:
            return self._stopped.wait(max(timeout, 0))
        if state is STOPPED:
            self._stopped.set()
            return True
        flushed = True
        if state is RUNNING:
            flushed = self.flush(timeout)
            with self._lock:
                self._state = STOPPED  # from here on, enqueue() counts a drop
            self._finish = True
            self._wake.set()
            self._batcher.join(max(deadline - time.monotonic(), 0))
            for _ in self._senders:
                try:
                    self._jobs.put_nowait(None)
                except queue.Full:
                    break  # senders are stuck on a hanging backend; they are daemons
            for thread in self._senders:
                thread.join(max(deadline - time.monotonic(), 0))
        leftover = self._abandon()
        try:
            self.transport.close()
        except Exception:
            logger.exception("mona_middleware: closing the transport failed")
        self._stopped.set()
        return flushed and not leftover

    def _abandon(self) -> int:
        """Count what is still queued or in flight after shutdown's time ran out."""
        with self._answered:
            inflight = sum(len(batch) for batch in self._inflight.values())
            self._inflight.clear()
        queued = [item for item in self._queue if not isinstance(item, _FlushMarker)]
        self._queue.clear()
        lost = inflight + message_count(queued)
        if lost:
            self.stats.drop("shutdown timeout", lost)
            logger.warning(
                "mona_middleware: %d message(s) not sent before the shutdown timeout (%.1f s)",
                lost,
                self.config.shutdown_timeout,
            )
        return lost

    def after_fork(self) -> None:
        """In a forked child: forget the parent's queue and threads, start afresh on use."""
        self._reset()
        self.transport.after_fork()

    # -- the batching thread ----------------------------------------------------------

    def _run_batcher(self) -> None:
        while True:
            self._wake.wait(self.config.flush_interval)
            self._wake.clear()
            self._wake_pending = False
            try:
                self._drain()
            except Exception:
                logger.exception("mona_middleware: unexpected error in the batching thread")
            if self._finish and not self._queue:
                return

    def _drain(self) -> None:
        batch: list[dict[str, Any]] = []
        size = self.config.batch_size
        pending = self._queue
        while pending:
            item = pending.popleft()
            if isinstance(item, _FlushMarker):
                if batch:
                    self._submit(batch)
                    batch = []
                self._arm(item)
                continue
            batch.extend(self._prepare(item))
            while len(batch) >= size:
                self._submit(batch[:size])
                batch = batch[size:]
        if batch:
            self._submit(batch)

    def _prepare(self, item: Any) -> list[dict[str, Any]]:
        try:
            messages = prepare(item, self.config, self.stats)
        except Exception:
            self.stats.drop("internal error preparing messages", message_count([item]))
            logger.exception("mona_middleware: could not prepare messages")
            return []
        self.stats.add("contexts", 1 if not isinstance(item, list) else 0)
        return messages

    def _submit(self, batch: list[dict[str, Any]]) -> None:
        with self._answered:
            self._seq += 1
            seq = self._seq
            self._inflight[seq] = batch
        self._jobs.put((seq, batch))  # blocks while senders are busy: the queue absorbs it

    def _arm(self, marker: _FlushMarker) -> None:
        with self._answered:
            marker.upto = self._seq
            if all(seq > marker.upto for seq in self._inflight):
                marker.done.set()
            else:
                self._markers.append(marker)

    # -- the sender threads -----------------------------------------------------------

    def _run_sender(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            seq, batch = job
            started = time.monotonic()
            try:
                result = self.transport.send(batch)
            except Exception as exc:  # a transport bug must not kill the thread
                logger.exception("mona_middleware: transport %s failed", self.transport.name)
                result = SendResult.transient(len(batch), f"transport error: {type(exc).__name__}")
            self._record(result, time.monotonic() - started)
            self._answer(seq)

    def _record(self, result: SendResult, seconds: float) -> None:
        stats = self.stats
        stats.add("messages_sent", result.sent)
        if result.sent == result.total:
            stats.add("batches_sent")
            return
        stats.add("batches_failed")
        if result.retryable:
            stats.drop(f"send failed: {result.error}", result.total)
        else:
            stats.add("messages_failed", result.failed)
            stats.reject(result.failure_reasons)
            stats.drop("rejected by the backend", result.failed)
        limited(
            40,
            f"send:{result.error}",
            "mona_middleware: %d of %d message(s) not accepted by %s: %s",
            result.total - result.sent,
            result.total,
            self.transport.name,
            result.error,
        )

    def _answer(self, seq: int) -> None:
        with self._answered:
            self._inflight.pop(seq, None)
            waiting = []
            for marker in self._markers:
                if all(s > marker.upto for s in self._inflight):
                    marker.done.set()
                else:
                    waiting.append(marker)
            self._markers = waiting

    def snapshot(self) -> dict[str, Any]:
        """``stats()`` for this exporter, with the live queue depth."""
        data = self.stats.snapshot()
        data["queued"] = sum(1 for item in list(self._queue) if not isinstance(item, _FlushMarker))
        with self._answered:
            data["in_flight"] = sum(len(batch) for batch in self._inflight.values())
        data["transport"] = self.transport.describe()
        data["state"] = self._state
        return data
