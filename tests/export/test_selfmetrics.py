"""Self-metrics: the exporter's reports on itself, as a context class of its own."""

from __future__ import annotations

import json
import time

import mona_middleware as mona
from mona_middleware._runtime import process as _runtime


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll a condition the code under test changes from another thread; bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_self_metrics_arrive_as_their_own_context_class(memory):
    mona.configure(transport=memory, flush_interval=0.02, self_metrics_interval=0.05)
    for n in range(5):
        with mona.context("APP"):
            mona.export({"n": n})
    assert wait_until(
        lambda: any(c == "MONA_MIDDLEWARE_SELF_METRICS" for c, _ in memory.contexts()), timeout=5
    )
    report = next(
        f for (c, _), f in memory.contexts().items() if c == "MONA_MIDDLEWARE_SELF_METRICS"
    )
    for field in (
        "queue_depth",
        "messages_sent",
        "messages_failed",
        "retries",
        "dropped_total",
        "send_latency_ms_mean",
        "send_latency_ms_max",
        "pid",
        "host",
    ):
        assert field in report


def test_the_kill_switch_silences_self_metrics_too(memory, tmp_path):
    switch = tmp_path / "mona.json"
    switch.write_text(json.dumps({"disable_all": False}))
    mona.configure(
        transport=memory,
        flush_interval=0.02,
        self_metrics_interval=0.05,
        config_file=str(switch),
        config_poll_interval=0.02,
    )

    def reports() -> int:
        assert mona.flush(5)
        return sum(m["arcClass"] == "MONA_MIDDLEWARE_SELF_METRICS" for m in memory.messages)

    with mona.context("APP"):
        mona.export({"n": 1})  # starts the exporter; its batcher reports every 50 ms
    assert wait_until(lambda: reports() > 0, timeout=5)
    switch.write_text(json.dumps({"disable_all": True}))
    assert wait_until(lambda: _runtime.file_switched_off(), timeout=5)
    time.sleep(0.1)  # a report being made as the switch flipped
    silenced = reports()
    time.sleep(0.5)  # about ten intervals
    assert reports() == silenced
    switch.write_text(json.dumps({"disable_all": False}))
    assert wait_until(lambda: reports() > silenced, timeout=5)
