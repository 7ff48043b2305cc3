"""The one shared exporter: a bounded queue, a batching thread, a pool of sender threads.

The request thread only appends to a deque. The batching thread wakes every
``WAKE_EVERY`` closed contexts (or when ``flush`` asks), turns them into wire messages,
and hands a batch to the sender threads once it holds ``batch_size`` messages or its
first message is ``flush_interval`` old; they send it through ``Delivery`` (retries,
spool). Threads start on first use, never at import, and a forked child starts its own
(``after_fork``), also when it was forked without Python's at-fork hooks: ``enqueue``
compares pids.

Backpressure: when the queue is full, code outside a web request (a backfill loop, a
job, ``export_batch``) waits for room, so a producer never outruns delivery and memory
stays bounded; a web request waits at most ``request_queue_wait`` and only then drops.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .._util import forks
from .._util.log import limited, logger
from .._util.stats import ExportStats
from ..config import MonaConfig
from ..transports.base import Transport
from .delivery import Delivery
from .items import ExplicitBatch, is_explicit
from .prepare import context_messages, message_count, prepare
from .selfmetrics import SelfMetrics
from .spool import Spool, default_spool_dir

__all__ = ["BatchExporter"]

NEW, RUNNING, STOPPED = "new", "running", "stopped"
# The batcher wakes every this many queued contexts (or batch_size, if smaller) and
# prepares them, while the POST still waits for batch_size messages: short turns with
# the GIL (a request waits ~0.3 ms, not the 2.5 ms of 500 contexts at once), and fewer
# closed contexts alive for the garbage collector to scan.
WAKE_EVERY = 64
_DRAIN = object()  # a sender job: resend from the spool
_getpid = os.getpid
# A producer waiting for room rechecks this often even without a wake-up (a missed
# notify, a shutdown): the wait never depends on one signal arriving.
_ROOM_POLL = 0.05


class _FlushMarker:
    """Put in the queue by ``flush``: done when every batch before it has been answered."""

    __slots__ = ("done", "upto")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.upto = -1


class _Job:
    """A batch on its way; whoever resolves it first (sender or shutdown) accounts for it."""

    __slots__ = ("batch", "resolved", "seq")

    def __init__(self, seq: int, batch: list[dict[str, Any]]) -> None:
        self.seq = seq
        self.batch = batch
        self.resolved = False


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
        self,
        config: MonaConfig,
        transport: Transport,
        switched_off: Callable[[], bool] = _never,
    ) -> None:
        self.config = config
        self.transport = transport
        self._switched_off = switched_off
        self._reset()

    def _reset(self) -> None:
        self.stats = ExportStats()
        self.spool = _make_spool(self.config, self.transport, self.stats)
        self.delivery = Delivery(
            self.config, self.transport, self.stats, self.spool, self._switched_off
        )
        self._metrics = SelfMetrics(self.config, self.snapshot, self.stats, self._switched_off)
        self._queue: deque[Any] = deque()
        self._max = self.config.queue_size
        # Waiting producers are let in once the batcher has made this much room: enough
        # for a burst of appends per wake-up, never more than half the queue.
        self._room_at = max(self._max - WAKE_EVERY, self._max // 2)
        # Reentrant: a signal handler that shuts down may run while this thread holds it.
        self._room = threading.Condition(threading.RLock())
        self._waiting = 0  # producers waiting for room (read by the batcher without a lock)
        # export_batch messages queued (changed under ``_room``): capped at queue_size too,
        # so a call of any size streams through in chunks instead of sitting in memory.
        self._explicit_queued = 0
        self._batch_size = self.config.batch_size
        self._wake_at = min(self._batch_size, WAKE_EVERY)
        self._batch: list[dict[str, Any]] = []  # prepared, waiting for a full POST
        self._batch_due = 0.0  # when it goes anyway (flush_interval after its first)
        self._turn_contexts = 0  # contexts prepared in this turn, counted at its end
        self._wake = threading.Event()
        self._wake_pending = False
        self._state = NEW
        # First used while the interpreter exits (an atexit hook): no thread, no later
        # flush; each enqueue sends on the caller's thread (see start).
        self._inline = False
        self._lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue(maxsize=self.config.sender_threads * 2)
        self._answered = threading.Condition()
        self._inflight: dict[int, _Job] = {}
        self._markers: list[_FlushMarker] = []
        self._seq = 0
        self._stopping = False
        self._finish = False
        self._abandoned = False  # shutdown's time is up: new batches go to the spool
        self._stopped = threading.Event()
        self._batcher: threading.Thread | None = None
        self._senders: list[threading.Thread] = []
        self.pid = os.getpid()  # the process whose threads these are
        self._next_probe = 0.0

    # -- the request's side: this is the hot path ------------------------------------

    def enqueue(self, item: Any) -> bool:
        """Queue a closed context or an explicit batch; never raises.

        With the queue full it waits for room: at most ``request_queue_wait`` for an item
        whose ``in_request`` is true (then it is dropped, counted), else until there is room.
        """
        if self.pid != _getpid():
            self._forked()
        if self._state is not RUNNING:
            if not self.start():
                return self._drop([item], "exporter shut down")
            if self._inline:
                return self._enqueue_inline(item)
        pending = self._queue
        if len(pending) >= self._max:
            refused = self._wait_for_room(item)
            if refused is not None:
                return self._drop([item], refused)
        pending.append(item)
        if len(pending) >= self._wake_at and not self._wake_pending:
            self._wake_pending = True
            self._wake.set()
        return True

    def enqueue_explicit(self, batch: Any) -> bool:
        """Queue one chunk of ``export_batch`` messages, waiting while ``queue_size``
        messages of earlier chunks are still queued (a first chunk always goes in)."""
        if self.pid != _getpid():
            self._forked()
        if self._state is not RUNNING:
            if not self.start():
                return self._drop([batch], "exporter shut down")
            if self._inline:
                return self._enqueue_inline(batch)
        size = len(batch)
        with self._room:
            queued = self._explicit_queued
            if queued and queued + size > self._max:
                refused = self._wait_for_room(batch, lambda: self._explicit_full(size))
                if refused is not None:
                    return self._drop([batch], refused)
            self._explicit_queued += size
            self._queue.append(batch)
        self._wake_pending = True
        self._wake.set()
        return True

    def _explicit_full(self, size: int) -> bool:
        queued = self._explicit_queued
        return bool(queued) and queued + size > self._max

    def _wait_for_room(self, item: Any, full: Callable[[], bool] | None = None) -> str | None:
        """Backpressure, off the hot path: None once there is room, else why not."""
        if threading.current_thread() in (self._batcher, *self._senders):
            return "queue full"  # an exporter thread (a hook exporting) cannot wait for itself
        in_request = bool(getattr(item, "in_request", False))
        deadline = time.monotonic() + self.config.request_queue_wait if in_request else None
        self.stats.add("queue_waits")
        pending = self._queue
        if full is None:
            full = lambda: len(pending) >= self._max  # noqa: E731
        with self._room:
            while full():
                if self._state is not RUNNING:
                    return "exporter shut down"
                if sys.is_finalizing() or not self._batcher.is_alive():
                    return "queue full"  # nothing will drain it any more: never hang
                wait = _ROOM_POLL
                if deadline is not None:
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        return "queue full"
                self._waiting += 1
                self._wake.set()
                self._room.wait(min(wait, _ROOM_POLL))
        return None

    def _let_in(self) -> None:
        """The batcher made room: wake the producers waiting for it (once per wait)."""
        with self._room:
            self._waiting = 0
            self._room.notify_all()

    def _forked(self) -> None:
        """This process was forked without Python's at-fork hooks (uWSGI's default)."""
        forks.renew_if_forked()  # ids, locks, and the process's exporter (maybe this one)
        if self.pid != _getpid():  # an exporter the process does not own
            self.after_fork()
        limited(
            30,
            "hookless_fork",
            "mona_middleware: this process was forked without Python's at-fork hooks; "
            "the exporter started afresh (under uWSGI set enable-threads and "
            "py-call-osafterfork, or lazy-apps)",
        )

    def _drop(self, items: list[Any], reason: str) -> bool:
        count = message_count(items)
        self.stats.drop(reason, count)
        limited(30, f"drop:{reason}", "mona_middleware: dropped %d message(s): %s", count, reason)
        return False

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> bool:
        """Start the threads now (they otherwise start with the first item); False once
        shut down or while the interpreter exits."""
        with self._lock:
            if self._state is RUNNING:
                return True
            if self._state is STOPPED or sys.is_finalizing():
                return False  # starting a thread while the interpreter exits would hang
            if self._inline:
                return True
            main = threading.main_thread()
            if not self.threads_allowed() or (
                threading.current_thread() is main and not main.is_alive()
            ):
                # The host says no threads now (a uWSGI master about to fork without
                # hooks), or the main thread runs the atexit hooks (threading marks it
                # stopped when it was loaded before exit): a hook registered now never
                # runs, and Python 3.12+ starts no thread. Send on this thread instead.
                self._inline = True
                return True
            self._batcher = threading.Thread(
                target=self._run_batcher, name="mona-batcher", daemon=True
            )
            self._senders = [
                threading.Thread(target=self._run_sender, name=f"mona-sender-{n}", daemon=True)
                for n in range(self.config.sender_threads)
            ]
            try:
                self._batcher.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                self._inline = True
                return True
            for thread in self._senders:
                thread.start()
            self._state = RUNNING
            logger.debug(
                "mona_middleware: exporter started, sending to %s", self.transport.describe()
            )
            return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Process everything queued so far: sent, refused, spooled or counted.

        True when that finished within ``timeout``. Backoff waits are cut short so a
        backend that is back gets the data now; a server's ``Retry-After`` is honoured.
        """
        if self._state is not RUNNING:
            return not self._queue
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wake.set()
        self.delivery.wake()
        return marker.done.wait(max(timeout, 0))

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, stop the threads and close the transport, all within ``timeout`` seconds.

        What could not be sent in time goes to the spool, or is counted as dropped.
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
        if state is NEW:
            flushed = not self._inline or self._send_inline(deadline)
        else:
            flushed = self._stop_threads(timeout, deadline)
        leftover = self._abandon()
        try:
            self.transport.close()
        except Exception:
            logger.exception("mona_middleware: closing the transport failed")
        self._stopped.set()
        return flushed and not leftover

    def _stop_threads(self, timeout: float, deadline: float) -> bool:
        flushed = self.flush(timeout * 0.8)  # keep a fifth of the time for the spool
        with self._lock:
            self._state = STOPPED  # from here on, enqueue() counts a drop
        self._let_in()  # producers waiting for room: there will be none
        self._finish = True
        self.delivery.wake(stopping=True)  # retry waits end: those batches go to the spool
        self._wake.set()
        self._batcher.join(max(deadline - time.monotonic(), 0))
        for _ in self._senders:
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                break  # senders are stuck on a hanging backend; they are daemons
        for thread in self._senders:
            thread.join(max(deadline - time.monotonic(), 0))
        return flushed

    def _enqueue_inline(self, item: Any) -> bool:
        with self._lock:  # hooks of several threads may export at exit
            self._queue.append(item)
            self._send_inline(time.monotonic() + self.config.shutdown_timeout)
        return True

    def _send_inline(self, deadline: float) -> bool:
        """Prepare and send what is queued on this thread (no thread could start), one
        attempt per batch before ``deadline``; ``_abandon`` spools or counts the rest."""
        pending, size = self._queue, self._batch_size
        while (pending or self._batch) and time.monotonic() < deadline:
            while pending and len(self._batch) < size:
                item = pending.popleft()
                if not isinstance(item, _FlushMarker):
                    self._batch.extend(self._prepare(item))
            batch, self._batch = self._batch[:size], self._batch[size:]
            if batch:
                result, retries, gave_up = self.delivery.attempt(batch, retry=False)
                if gave_up:
                    self.delivery.give_up(result, batch, None, retries)
                else:
                    self.delivery.settle(result, None, retries, batch)
        return not pending and not self._batch

    def _abandon(self) -> int:
        """Spool (or count) what is still queued or in flight when shutdown's time is up."""
        with self._answered:
            self._abandoned = True
            jobs = [job for job in self._inflight.values() if _resolve(job)]
            self._inflight.clear()
        batches = [job.batch for job in jobs]  # a sender that picks one up later skips it
        queued = []
        pending = self._queue
        while True:  # popleft, not iteration: a thread that outlived its join may append
            try:
                item = pending.popleft()
            except IndexError:
                break
            if not isinstance(item, _FlushMarker):
                queued.append(item)
        self._explicit_queued = 0
        partial, self._batch = self._batch, []
        batches.append(partial + [m for item in queued for m in self._prepare(item)])
        lost = kept = 0
        for batch in filter(None, batches):
            if self.spool is not None and self.spool.write(batch):
                kept += len(batch)
            else:
                lost += len(batch)
        self.stats.drop("not sent before the shutdown timeout", lost)
        if lost or kept:
            logger.warning(
                "mona_middleware: at shutdown, %d message(s) were not sent in time: "
                "%d kept in the spool, %d dropped",
                lost + kept,
                kept,
                lost,
            )
        return lost + kept

    def after_fork(self) -> None:
        """In a forked child: forget the parent's queue and threads, start afresh on use."""
        self._reset()
        self.transport.after_fork()

    # -- the batching thread ----------------------------------------------------------

    def _run_batcher(self) -> None:
        if self.spool is not None:
            self._offer(_DRAIN)  # what an earlier process left in the spool
        interval = self.config.flush_interval
        while True:
            wait = max(self._batch_due - time.monotonic(), 0) if self._batch else interval
            self._wake.wait(wait)
            self._wake.clear()
            self._wake_pending = False
            try:
                self._drain()
                report = self._metrics.due_report()
                if report is not None:
                    self._queue.append(report)
                if self.spool is not None and self._spool_due():
                    self._offer(_DRAIN)
            except Exception:
                logger.exception("mona_middleware: unexpected error in the batching thread")
            if self._finish and not self._queue and not self._batch:
                return

    def _spool_due(self) -> bool:
        """Probe the backend for the spool now and then, even with no fresh traffic."""
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + self.config.retry_max_backoff
        return self.spool.pending()[0] > 0

    def _offer(self, job: Any) -> None:
        # When senders are busy with fresh batches, the spool waits for the next round.
        with contextlib.suppress(queue.Full):
            self._jobs.put_nowait(job)

    def _drain(self) -> None:
        try:  # contexts are counted once per turn: no stats lock per context
            self._drain_queue()
        finally:
            contexts = self._turn_contexts
            self._turn_contexts = 0
            if contexts:
                self.stats.add("contexts", contexts)

    def _drain_queue(self) -> None:
        size = self._batch_size
        pending = self._queue
        config, stats = self.config, self.stats
        while pending:
            item = pending.popleft()
            kind = type(item)
            if kind is ExplicitBatch:
                with self._room:
                    self._explicit_queued -= len(item)
                    self._waiting = 0
                    self._room.notify_all()
                messages = self._prepare(item)
            elif kind is _FlushMarker:
                self._submit_partial()
                self._arm(item)
                continue
            else:
                if self._waiting and len(pending) <= self._room_at:
                    self._let_in()
                self._turn_contexts += 1
                try:  # a closed context: prepare()'s dispatch, skipped
                    messages = context_messages(item, config, stats)
                except Exception:
                    messages = self._prepare_failed(item)
            if not messages:
                continue
            if not self._batch:
                self._batch_due = time.monotonic() + self.config.flush_interval
            self._batch.extend(messages)
            while len(self._batch) >= size:
                full, self._batch = self._batch[:size], self._batch[size:]
                self._submit(full)
        if self._waiting:
            self._let_in()
        if self._batch and (self._finish or time.monotonic() >= self._batch_due):
            self._submit_partial()

    def _submit_partial(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._submit(batch)

    def _prepare(self, item: Any) -> list[dict[str, Any]]:
        """Messages for an item outside the batcher's turn (inline sends, shutdown)."""
        try:
            messages = prepare(item, self.config, self.stats)
        except Exception:
            return self._prepare_failed(item)
        if not is_explicit(item):
            self.stats.add("contexts")
        return messages

    def _prepare_failed(self, item: Any) -> list[dict[str, Any]]:
        self.stats.drop("internal error preparing messages", message_count([item]))
        logger.exception("mona_middleware: could not prepare messages")
        return []

    def _submit(self, batch: list[dict[str, Any]]) -> None:
        # The backend is down and every sender is busy retrying: straight to disk (resent
        # when it answers again) rather than filling the queue until it drops.
        down = self.spool is not None and not self.delivery.backend_ok and self._jobs.full()
        if down and self.spool.write(batch):
            return
        with self._answered:
            abandoned = self._abandoned
            if not abandoned:
                self._seq += 1
                job = self._inflight[self._seq] = _Job(self._seq, batch)
        if abandoned:  # shutdown has already spooled what it found: this batch was not there
            if self.spool is None or not self.spool.write(batch):
                self.stats.drop("not sent before the shutdown timeout", len(batch))
            return
        self._jobs.put(job)  # blocks while senders are busy: the deque absorbs the wait

    def _arm(self, marker: _FlushMarker) -> None:
        with self._answered:
            marker.upto = self._seq
            if all(seq > marker.upto for seq in self._inflight):
                marker.done.set()
            else:
                self._markers.append(marker)

    # -- the sender threads -----------------------------------------------------------

    def _run_sender(self) -> None:
        delivery = self.delivery
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                if job is not _DRAIN:
                    self._send(job)
                if self.spool is not None and self._jobs.empty():
                    delivery.drain_spool(lambda: not self._jobs.empty(), probe=job is _DRAIN)
            except Exception:
                logger.exception("mona_middleware: unexpected error in a sender thread")

    def _send(self, job: _Job) -> None:
        delivery = self.delivery
        with self._answered:
            if job.resolved:  # shutdown spooled it while it waited: sending it too would
                return  # deliver it twice, once now and once from the spool
        try:
            result, retries, gave_up = delivery.attempt(job.batch)
            with self._answered:
                mine = _resolve(job)
            if mine and gave_up:
                delivery.give_up(result, job.batch, None, retries)
            elif mine:
                delivery.settle(result, None, retries, job.batch)
        finally:
            self._answer(job.seq)

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
        # Closed contexts not yet prepared, plus prepared messages waiting for a full POST.
        data["queued"] = len(self._batch) + sum(
            1 for item in list(self._queue) if not isinstance(item, _FlushMarker)
        )
        with self._answered:
            data["in_flight"] = sum(len(job.batch) for job in self._inflight.values())
        data["spool"] = None
        if self.spool is not None:
            batches, messages = self.spool.pending()
            data["spool"] = {
                "directory": str(self.spool.directory),
                "batches": batches,
                "messages": messages,
            }
        data["transport"] = self.transport.describe()
        data["state"] = self._state
        return data


def _resolve(job: _Job) -> bool:
    """Claim ``job`` for accounting (call under the exporter's lock); False if taken."""
    if job.resolved:
        return False
    job.resolved = True
    return True


def _make_spool(config: MonaConfig, transport: Transport, stats: ExportStats) -> Spool | None:
    """A spool for backends that can be down (REST); a local file or memory needs none."""
    if not config.spool or transport.name != "rest":
        return None
    directory = config.spool_dir or default_spool_dir(transport.spool_key())
    return Spool(directory, config.spool_max_bytes, stats)
