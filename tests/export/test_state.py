"""The exporter's lifecycle as ``stats()`` shows it, from first item to shutdown."""

from __future__ import annotations

import mona_middleware as mona
from mona_middleware._export.exporter import BatchExporter
from mona_middleware._export.state import State
from mona_middleware.config import MonaConfig
from mona_middleware.transports import InMemoryTransport


def test_new_then_running_then_stopped_and_nothing_after():
    exporter = BatchExporter(MonaConfig(flush_interval=0.05), InMemoryTransport())
    assert exporter.snapshot()["state"] == State.UNOPENED.value == "new"
    ctx = mona.MonaContext("S", "s1")
    ctx.export({"a": 1})
    assert exporter.enqueue(ctx) is True
    assert exporter.snapshot()["state"] == State.OPEN.value == "running"
    assert exporter.shutdown(5) is True
    assert exporter.snapshot()["state"] == State.CLOSED.value == "stopped"
    assert exporter.transport.messages and exporter.snapshot()["messages_sent"] == 1


def test_where_no_thread_may_start_items_are_sent_on_the_callers_thread():
    exporter = BatchExporter(MonaConfig(), InMemoryTransport())
    exporter.threads_allowed = lambda: False  # a uWSGI master that forks without hooks
    ctx = mona.MonaContext("S", "inline")
    ctx.export({"a": 1})
    assert exporter.enqueue(ctx) is True
    assert exporter.snapshot()["state"] == State.INLINE.value
    assert [m["contextId"] for m in exporter.transport.messages] == ["inline"]  # already
    assert exporter.shutdown(5) is True
