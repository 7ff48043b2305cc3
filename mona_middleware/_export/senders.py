"""The sender pool: threads that POST batches, and the ledger of batches on their way.

Every batch the batcher submits is a ``Job`` in the ledger until it is answered. The
ledger is what makes ``flush`` exact (a flush marker is done once every job submitted
before it has been answered) and what shutdown reads at its deadline: a job whose first
send has not started is handed back (spooled, or counted), never sent as well; a job
still on the wire is waited for until the deadline, then counted under its own reason,
because the backend may have stored it: it is never spooled as a copy.

With no threads (``threads=0``: at interpreter exit, or in a uWSGI master that forks
without hooks) the same pool sends each job on the submitting thread, one try each.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from .._util.log import logger
from .._util.stats import ExportStats
from ..transports.base import WireBatch
from .delivery import Delivery
from .items import FlushMarker

__all__ = ["UNANSWERED", "SenderPool"]

UNANSWERED = "unanswered at shutdown (the backend may have stored them)"
# How often a batcher blocked on busy senders looks whether shutdown's time is up.
_SUBMIT_POLL = 0.05


class Job:
    """One batch in the ledger; ``claimed`` by whoever accounts for it (sender or shutdown).

    Delivery calls ``begin_send``/``end_send`` around each POST, so shutdown knows
    whether the backend may be storing it right now (``on_the_wire``).
    """

    __slots__ = ("batch", "claimed", "lock", "on_the_wire", "seq", "spool_round", "started")

    def __init__(
        self, seq: int, batch: WireBatch, lock: threading.Lock, spool_round: bool = False
    ) -> None:
        self.seq = seq
        self.batch = batch
        self.lock = lock  # the pool's ledger lock
        self.spool_round = spool_round  # no batch of its own: resend from the spool
        self.started = False  # a sender took it
        self.on_the_wire = False
        self.claimed = False

    def begin_send(self) -> bool:
        """False once shutdown has claimed the batch: then it must not be sent at all."""
        with self.lock:
            if self.claimed:
                return False
            self.on_the_wire = True
            return True

    def end_send(self) -> None:
        self.on_the_wire = False


class SenderPool:
    """Sends submitted batches on ``threads`` threads (or inline with none)."""

    def __init__(self, delivery: Delivery, stats: ExportStats, threads: int) -> None:
        self.delivery = delivery
        self.stats = stats
        self.spool = delivery.spool
        self.size = threads
        # Guards the ledger (_ledger, _markers, _seq, _closed). Taken by the batcher and
        # the senders, and by shutdown at its deadline; never by an app's thread on the
        # way to the queue, nor by flush() or stats(), so a signal handler never waits
        # for it.
        self._ledger_lock = threading.Lock()
        self._ledger: dict[int, Job] = {}
        self._markers: list[FlushMarker] = []
        self._seq = 0
        self._closed = False  # shutdown's time is up: new batches are handed back
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=max(threads * 2, 1))
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._run, name=f"mona-sender-{n}", daemon=True)
            for n in range(self.size)
        ]
        for thread in self._threads:
            thread.start()

    def owns(self, thread: threading.Thread) -> bool:
        return thread in self._threads

    # -- the batcher's side -------------------------------------------------------------

    def submit(self, batch: WireBatch) -> None:
        """Send ``batch`` (on a sender thread, or here with none), or hand it back if closed."""
        spool = self.spool
        # The backend is down and every sender is busy retrying: straight to disk (resent
        # when it answers again) rather than filling the queue until it drops.
        down = spool is not None and not self.delivery.backend_ok and self._jobs.full()
        if down and spool.write(batch):  # type: ignore[union-attr]  # down: there is a spool
            return
        with self._ledger_lock:
            closed = self._closed
            if not closed:
                self._seq += 1
                job = self._ledger[self._seq] = Job(self._seq, batch, self._ledger_lock)
        if closed:  # shutdown already handed back what it found: this one was not there
            self.hand_back([batch])
        elif not self._threads:
            self._send(job, retry=False)
        else:
            while True:  # blocks while senders are busy: the queue upstream absorbs it
                try:
                    self._jobs.put(job, timeout=_SUBMIT_POLL)
                    return
                except queue.Full:
                    if self._closed:
                        return  # the job is in the ledger: close() handed it back

    def arm(self, marker: FlushMarker) -> None:
        """``marker`` is done once every job submitted so far has been answered."""
        with self._ledger_lock:
            marker.upto = self._seq
            if any(seq <= marker.upto for seq in self._ledger):
                self._markers.append(marker)
                return
        marker.done.set()

    def offer_spool_round(self) -> None:
        """Resend from the spool when a sender is free (when all are busy, next time).

        The round is in the ledger like a batch, so a ``flush`` after it (a restarted
        app's first, say) waits for what the spool held to be resent.
        """
        if not self._threads:
            return
        with self._ledger_lock:
            if self._closed:
                return
            self._seq += 1
            job = self._ledger[self._seq] = Job(self._seq, WireBatch(), self._ledger_lock, True)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._retire_job(job.seq)

    def in_flight(self) -> int:
        """Messages submitted and not yet answered; takes no lock (``stats()``)."""
        return sum(len(job.batch) for job in list(self._ledger.values()))

    # -- the senders ----------------------------------------------------------------------

    def _run(self) -> None:
        delivery = self.delivery
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                if job.spool_round:
                    self._spool_round(job)
                else:
                    self._send(job, retry=True)
                    if self.spool is not None and self._jobs.empty():
                        delivery.resend_spooled(lambda: not self._jobs.empty())
            except Exception:
                logger.exception("mona_middleware: unexpected error in a sender thread")

    def _spool_round(self, job: Job) -> None:
        try:
            if self.spool is not None and not job.claimed:
                self.delivery.resend_spooled(lambda: not self._jobs.empty(), probe=True)
        finally:
            self._retire_job(job.seq)

    def _send(self, job: Job, retry: bool) -> None:
        with self._ledger_lock:
            if job.claimed:  # shutdown handed it back while it waited: sending it too
                return  # would deliver it twice, once now and once from the spool
            job.started = True
        try:
            self.delivery.deliver(
                job.batch, account_if=lambda _: self._claim(job), retry=retry, progress=job
            )
        finally:
            self._retire_job(job.seq)

    def _claim(self, job: Job) -> bool:
        with self._ledger_lock:
            if job.claimed:
                return False
            job.claimed = True
            return True

    def _retire_job(self, seq: int) -> None:
        """Job ``seq`` was answered: out of the ledger; the markers it held back are done."""
        with self._ledger_lock:
            self._ledger.pop(seq, None)
            done = [m for m in self._markers if not any(s <= m.upto for s in self._ledger)]
            if done:
                self._markers = [m for m in self._markers if m not in done]
        for marker in done:
            marker.done.set()

    # -- shutdown -------------------------------------------------------------------------

    def stop(self, deadline: float) -> None:
        """Let the senders finish what they hold, until ``deadline``."""
        for _ in self._threads:
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                break  # senders are stuck on a hanging backend; they are daemons
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))

    def close(self) -> int:
        """Shutdown's time is up: hand back every job not on the wire, count the rest.

        A job between two sends (waiting out a backoff) is handed back too: its earlier
        sends failed, and its spool file keeps its key and whether one may have been stored.

        Returns how many messages were handed back or counted.
        """
        with self._ledger_lock:
            self._closed = True
            jobs = [job for job in self._ledger.values() if not job.claimed]
            for job in jobs:
                job.claimed = True
            # Read with the claim: a POST that ends right after it (end_send takes no
            # lock) may have been stored, so its batch is counted, never spooled as well.
            waiting = [job.batch for job in jobs if not job.on_the_wire]
            on_the_wire = sum(len(job.batch) for job in jobs if job.on_the_wire)
            self._ledger.clear()
            markers, self._markers = self._markers, []
        for marker in markers:
            marker.done.set()  # their flush() returns now; what it waited for is counted
        if on_the_wire:
            self.stats.drop(UNANSWERED, on_the_wire)
        self.hand_back(waiting)
        return sum(map(len, waiting)) + on_the_wire

    def hand_back(self, batches: list[WireBatch]) -> None:
        """Batches that were never sent: to the spool, or counted as dropped."""
        for batch in batches:
            if batch and (self.spool is None or not self.spool.write(batch)):
                self.stats.drop("not sent before the shutdown timeout", len(batch))
