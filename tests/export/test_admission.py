"""Admission: the bounded queue, backpressure without a shared lock, taking items back."""

from __future__ import annotations

import threading
import time

import mona_middleware as mona
from mona_middleware._export.admission import Admission
from mona_middleware._export.items import ExplicitBatch, ExplicitMessage, FlushMarker
from mona_middleware._export.state import State
from mona_middleware._util.signalsafe import Wakeup
from mona_middleware._util.stats import ExportStats


def admission(size: int = 4, request_wait: float = 0.02, refusal=lambda: None) -> Admission:
    gate = Admission(size, request_wait, 64, Wakeup(), ExportStats())
    gate.refusal = refusal
    return gate


def test_a_request_waits_at_most_its_bound_then_is_refused():
    gate = admission()
    started = time.monotonic()
    assert gate.wait_for_room(True, lambda: True) == "queue full"
    assert time.monotonic() - started < 5  # a bound, not a timing
    assert gate.stats.snapshot()["queue_waits"] == 1
    assert gate.wakeup.pending  # it asked the batcher for room


def test_code_outside_requests_waits_until_the_batcher_lets_it_in():
    gate = admission()
    room = threading.Event()
    result = []
    waiter = threading.Thread(
        target=lambda: result.append(gate.wait_for_room(False, lambda: not room.is_set()))
    )
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive()  # still waiting: no bound outside requests
    room.set()
    gate.let_in()
    waiter.join(10)
    assert result == [None]


def test_a_refusal_ends_the_wait_with_its_reason():
    gate = admission(refusal=lambda: "exporter shut down")
    assert gate.wait_for_room(False, lambda: True) == "exporter shut down"


def test_explicit_chunks_stream_through_at_most_queue_size_messages():
    gate = admission(size=4)
    chunk = ExplicitBatch([ExplicitMessage("C", str(n), {"n": n}, None, None) for n in range(3)])
    assert gate.put_explicit(chunk) is None  # the first chunk always goes in
    second = ExplicitBatch(list(chunk))
    done = []
    producer = threading.Thread(target=lambda: done.append(gate.put_explicit(second)))
    producer.start()
    time.sleep(0.2)
    assert producer.is_alive() and len(gate.queue) == 1  # 3 + 3 > 4: it waits
    assert gate.queue.popleft() is chunk
    gate.took_explicit(len(chunk))  # the batcher took the first
    producer.join(10)
    assert done == [None] and list(gate.queue) == [second]


def test_withdraw_takes_back_this_very_item_or_reports_that_a_consumer_took_it():
    gate = admission()
    first = ExplicitBatch([ExplicitMessage("C", "1", {"a": 1}, None, None)])
    twin = ExplicitBatch(list(first))  # equal contents, another batch
    gate.queue.extend([first, twin])
    assert gate.withdraw(twin) is True
    assert list(gate.queue) == [first] and gate.queue[0] is first
    assert gate.withdraw(twin) is False  # gone: whoever took it accounts for it


def test_take_all_releases_markers_and_returns_the_rest():
    gate = admission()
    marker = FlushMarker()
    gate.queue.extend(["a", marker, "b"])
    assert gate.depth() == 2
    assert gate.take_all() == ["a", "b"]
    assert marker.done.is_set() and not gate.queue


def test_the_hot_path_appends_and_wakes_the_batcher_every_wake_at_items():
    gate = admission(size=100)
    gate.state = State.OPEN
    gate.wake_at = 3
    assert gate.enqueue("a") and gate.enqueue("b")
    assert not gate.wakeup.pending
    assert gate.enqueue("c") and gate.wakeup.pending
    assert list(gate.queue) == ["a", "b", "c"]


def test_an_item_queued_while_not_open_is_handed_to_the_exporter():
    gate = admission()
    seen = []
    gate.not_open = lambda item: seen.append(item) or True
    assert gate.enqueue("x") is True
    assert seen == ["x"] and list(gate.queue) == ["x"]  # queued first: never lost


def test_a_full_queue_drops_a_request_after_its_bound_with_the_reason_counted():
    gate = admission(size=2)
    gate.state = State.OPEN

    request = mona.MonaContext("REQ", "r1")
    request.export({"a": 1})
    request.request = object()  # the state a web adapter puts on its request's context
    gate.queue.extend(["a", "b"])
    assert gate.enqueue(request) is False
    assert gate.stats.snapshot()["dropped"] == {"queue full": 1}
