"""The batcher: full batches, due partial batches, flush markers, explicit chunks."""

from __future__ import annotations

import json
import time

import mona_middleware as mona
from mona_middleware._export.admission import Admission
from mona_middleware._export.batcher import WAKE_EVERY, Batcher
from mona_middleware._export.delivery import Delivery
from mona_middleware._export.items import ExplicitBatch, ExplicitMessage, FlushMarker
from mona_middleware._export.selfmetrics import SelfMetrics
from mona_middleware._export.senders import SenderPool
from mona_middleware._util.signalsafe import Wakeup
from mona_middleware._util.stats import ExportStats
from mona_middleware.config import MonaConfig
from mona_middleware.transports import InMemoryTransport


def build(**options):
    config = MonaConfig(**options)
    stats = ExportStats()
    transport = InMemoryTransport()
    admission = Admission(config.queue_size, 0.005, 64, Wakeup(), stats)
    pool = SenderPool(Delivery(config, transport, stats, None), stats, threads=0)  # inline
    metrics = SelfMetrics(config, lambda: {}, stats, lambda: False)
    return Batcher(config, stats, admission, pool, metrics), admission, transport


def closed(n: int):
    ctx = mona.MonaContext("B", f"c{n}")
    ctx.export({"n": n})
    ctx.closed = True
    return ctx


def test_full_batches_go_at_once_and_a_partial_one_when_due():
    batcher, admission, transport = build(batch_size=10, flush_interval=0.2)
    admission.queue.extend(closed(n) for n in range(25))
    batcher.turn()
    assert [len(batch) for batch in transport.batches] == [10, 10]  # 5 wait
    assert batcher.waiting() == 5
    time.sleep(0.25)
    batcher.turn()  # the partial batch is due now
    assert [len(batch) for batch in transport.batches] == [10, 10, 5]
    assert batcher.stats.snapshot()["contexts"] == 25


def test_a_flush_marker_sends_what_came_before_it_and_is_done_when_answered():
    batcher, admission, transport = build(batch_size=100, flush_interval=60)
    marker = FlushMarker()
    admission.queue.extend([closed(0), closed(1), marker, closed(2)])
    batcher.turn()
    assert marker.done.is_set()
    assert [len(batch) for batch in transport.batches] == [2]  # the third waits for more


def test_explicit_chunks_are_prepared_and_counted_as_taken():
    batcher, admission, transport = build(batch_size=100, flush_interval=60)
    chunk = ExplicitBatch([ExplicitMessage("X", str(n), {"n": n}, None, None) for n in range(3)])
    admission.put_explicit(chunk)
    batcher.finishing = True
    batcher.turn()
    assert admission.explicit_taken == 3
    assert sorted(m["contextId"] for m in transport.messages) == ["0", "1", "2"]
    assert batcher.stats.snapshot()["contexts"] == 0  # explicit messages are not contexts


def test_a_context_that_cannot_be_prepared_is_counted_and_the_rest_go_on(caplog):
    batcher, admission, transport = build(batch_size=100, flush_interval=60)

    class Broken:
        context_class = "BROKEN"

        def take_ops(self):
            raise RuntimeError("broken context")

        def ops(self):
            return [{"a": 1}]

    admission.queue.extend([Broken(), closed(1)])
    batcher.finishing = True
    batcher.turn()
    assert [m["contextId"] for m in transport.messages] == ["c1"]
    assert batcher.stats.snapshot()["dropped"] == {"internal error preparing messages": 1}


def test_the_batcher_wakes_for_a_few_contexts_not_a_whole_batch():
    batcher, _, _ = build(batch_size=500)
    assert batcher.wake_at == WAKE_EVERY < 500
    assert build(batch_size=10)[0].wake_at == 10


def test_leftovers_gather_the_partial_batch_and_what_shutdown_took_from_the_queue():
    batcher, admission, _ = build(batch_size=100, flush_interval=60)
    admission.queue.extend([closed(0), closed(1)])
    batcher.turn()
    leftover = batcher.leftovers([closed(2)])
    assert [json.loads(m)["contextId"] for m in leftover] == ["c0", "c1", "c2"]  # encoded
    assert leftover.key and batcher.waiting() == 0
