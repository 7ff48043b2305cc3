"""The sender pool's ledger: exact flushes, and at shutdown's deadline a batch is handed
back (never sent) or counted as unanswered (never spooled as a copy), never both."""

from __future__ import annotations

import threading
import time

import mona_middleware as mona
from mona_middleware._export.delivery import Delivery
from mona_middleware._export.items import FlushMarker
from mona_middleware._export.senders import UNANSWERED, SenderPool
from mona_middleware._export.spool import Spool
from mona_middleware._runtime import process as _runtime
from mona_middleware._util.stats import ExportStats
from mona_middleware.config import MonaConfig
from mona_middleware.transports import SendResult, Transport, WireBatch

from ..conftest import rest_options
from ..helpers import export_contexts


class HeldTransport(Transport):
    """Holds each send until released; records what it was sent."""

    name = "held"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.sent: list[str] = []

    def send(self, messages):
        self.entered.release()
        self.release.wait(30)
        self.sent.append(messages.key)
        return SendResult.ok(len(messages))


def pool_with(transport, tmp_path, threads=1):
    stats = ExportStats()
    spool = Spool(str(tmp_path / "spool"), 1 << 20, stats)
    delivery = Delivery(MonaConfig(), transport, stats, spool)
    pool = SenderPool(delivery, stats, threads)
    pool.start()
    return pool, stats, spool


def batch(n: int) -> WireBatch:
    return WireBatch([{"message": {"n": n}, "arcClass": "C", "contextId": f"c{n}"}])


def test_at_the_deadline_a_waiting_batch_is_spooled_and_the_one_on_the_wire_counted(tmp_path):
    transport = HeldTransport()
    pool, stats, spool = pool_with(transport, tmp_path)
    first, second = batch(1), batch(2)
    pool.submit(first)
    assert transport.entered.acquire(timeout=10)  # the first is on the wire
    pool.submit(second)  # waits for the busy sender
    assert pool.close() == 2
    transport.release.set()  # the first is answered after all: counted once, as it was
    pool.stop(time.monotonic() + 10)
    snapshot = stats.snapshot()
    assert snapshot["dropped"] == {UNANSWERED: 1}
    assert snapshot["messages_spooled"] == 1 and spool.pending() == (1, 1)
    assert snapshot["messages_sent"] == 0  # the late answer claimed nothing
    assert transport.sent == [first.key]  # the second was never sent, only spooled
    reloaded = spool.load(spool.claim())
    assert reloaded.key == second.key  # its resend carries its key


class AnsweredAsCloseLetsGo:
    """The pool's ledger lock, with the answer to the POST on the wire arriving the moment
    ``close()`` lets go of it: the interleaving a property run found."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.on_release = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()
        hook, self.on_release = self.on_release, None
        if hook is not None:
            hook()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_a_post_answered_just_as_the_deadline_claims_it_is_counted_not_spooled(tmp_path):
    """Whether a batch is on the wire is read with the claim: read after it, a POST that
    ended meanwhile (and may have been stored) looked never sent and was spooled too."""
    transport = HeldTransport()
    pool, stats, spool = pool_with(transport, tmp_path)
    lock = pool._ledger_lock = AnsweredAsCloseLetsGo()
    first = batch(1)
    pool.submit(first)
    assert transport.entered.acquire(timeout=10)  # on the wire
    (job,) = pool._ledger.values()
    lock.on_release = job.end_send  # its POST ends as close() releases the ledger
    assert pool.close() == 1
    transport.release.set()
    pool.stop(time.monotonic() + 10)
    snapshot = stats.snapshot()
    assert snapshot["dropped"] == {UNANSWERED: 1}
    assert snapshot["messages_spooled"] == 0 and spool.pending() == (0, 0)
    assert transport.sent == [first.key]  # sent once; nothing left to send it again


def test_a_flush_marker_is_done_only_when_every_earlier_batch_is_answered(tmp_path):
    transport = HeldTransport()
    pool, _, _ = pool_with(transport, tmp_path, threads=2)
    pool.submit(batch(1))
    pool.submit(batch(2))
    marker = FlushMarker()
    pool.arm(marker)
    assert not marker.done.wait(0.2)
    transport.release.set()
    assert marker.done.wait(10)
    later = FlushMarker()
    pool.arm(later)  # nothing in flight: done at once
    assert later.done.is_set()
    pool.stop(time.monotonic() + 10)


def test_a_batch_handed_back_is_never_sent(tmp_path):
    transport = HeldTransport()
    pool, stats, _spool = pool_with(transport, tmp_path)
    pool.submit(batch(1))
    assert transport.entered.acquire(timeout=10)
    waiting = batch(2)
    pool.submit(waiting)
    pool.close()
    transport.release.set()
    pool.stop(time.monotonic() + 10)
    time.sleep(0.2)
    assert waiting.key not in transport.sent
    pool.submit(batch(3))  # after the deadline: handed back at once
    assert stats.snapshot()["messages_spooled"] == 2


def test_a_slow_backend_that_stores_after_the_deadline_gets_each_context_once(
    mona_server, tmp_path
):
    """The answer comes after shutdown's deadline and the backend stores the batch: it
    must not also sit in the spool for the next process (20 of 20 were stored twice)."""
    spool_dir = str(tmp_path / "spool")
    options = rest_options(mona_server, http_timeout=10, spool_dir=spool_dir)
    mona.configure(**options)
    export_contexts(1, prefix="warm")
    assert mona.flush(5)
    mona_server.hang(2, times=1)  # answers, and stores, 2 s later
    export_contexts(20, prefix="slow")
    exporter = _runtime.exporter()
    assert mona.shutdown(0.5) is False
    assert exporter.snapshot()["dropped"] == {UNANSWERED: 20}
    assert exporter.snapshot()["messages_spooled"] == 0
    assert mona_server.wait_for_messages(21, timeout=10)
    mona.configure(**options)  # the next process, on the same spool
    export_contexts(1, prefix="next")
    assert mona.flush(10)
    counts = mona_server.context_counts()
    assert len(counts) == 22 and set(counts.values()) == {1}
