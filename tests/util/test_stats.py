"""The counters behind ``stats()``: counts, drops by reason, the backend's reasons, latency."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from mona_middleware._util.stats import ExportStats


def test_a_fresh_snapshot_counts_nothing():
    snapshot = ExportStats().snapshot()
    assert snapshot["dropped"] == {} and snapshot["failure_reasons"] == {}
    assert snapshot["dropped_total"] == 0
    counts = {k: v for k, v in snapshot.items() if k not in ("dropped", "failure_reasons")}
    assert set(counts.values()) == {0}
    assert {"contexts", "messages_sent", "retries", "messages_spooled"} <= set(counts)


def test_counts_drops_and_rejections_are_kept_by_name_and_reason():
    stats = ExportStats()
    stats.add("messages_sent", 3)
    stats.add("messages_sent")
    stats.drop("queue full", 2)
    stats.drop("queue full", 5)
    stats.drop("spool full", 0)  # nothing dropped: no reason recorded
    stats.reject(Counter({"field x: bad type": 2}))
    stats.reject(Counter({"field x: bad type": 1, "topLevelError: no such user": 4}))

    snapshot = stats.snapshot()

    assert stats.get("messages_sent") == snapshot["messages_sent"] == 4
    assert snapshot["dropped"] == {"queue full": 7}
    assert snapshot["dropped_total"] == 7
    assert snapshot["failure_reasons"] == {"field x: bad type": 3, "topLevelError: no such user": 4}
    snapshot["dropped"]["queue full"] = 0  # a copy: the counters are not the caller's
    assert stats.snapshot()["dropped"] == {"queue full": 7}


def test_latency_is_taken_since_the_last_read():
    stats = ExportStats()
    for seconds in (0.010, 0.030, 0.020):
        stats.observe_latency(seconds)

    sends, mean_ms, max_ms = stats.take_latency()

    assert sends == 3
    assert mean_ms == pytest.approx(20.0) and max_ms == pytest.approx(30.0)
    assert stats.take_latency() == (0, 0.0, 0.0)


def test_counting_from_many_threads_loses_nothing():
    stats = ExportStats()

    def count() -> None:
        for _ in range(2000):
            stats.add("contexts")
            stats.drop("queue full", 1)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert stats.get("contexts") == 16_000
    assert stats.snapshot()["dropped"] == {"queue full": 16_000}
