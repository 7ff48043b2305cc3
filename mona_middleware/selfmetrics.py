"""The exporter reporting on itself, as a context class of its own, every N seconds.

Off by default (``self_metrics_interval=0``). Each report is one context of class
``self_metrics_class`` with the queue depth, what was sent, failed, retried, spooled and
dropped (by reason) since start, and the send latency since the previous report.
"""

from __future__ import annotations

import os
import re
import socket
import time
from typing import TYPE_CHECKING, Any

from .config import MonaConfig
from .prepare import ExplicitBatch, ExplicitMessage

if TYPE_CHECKING:
    from .exporter import BatchExporter


class SelfMetrics:
    def __init__(self, config: MonaConfig, exporter: BatchExporter) -> None:
        self.interval = config.self_metrics_interval
        self.context_class = config.self_metrics_class
        self._exporter = exporter
        self._next = time.monotonic() + self.interval
        self._reports = 0

    def maybe_report(self) -> None:
        """Queue a report if one is due (called by the batching thread)."""
        if not self.interval or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.interval
        from . import _runtime  # at call time: _runtime imports the exporter, which imports us

        if _runtime.switched_off():  # the kill switch silences the exporter's own reports too
            return
        self._reports += 1
        host, pid = socket.gethostname(), os.getpid()
        fields = self.fields() | {"host": host, "pid": pid}
        message = ExplicitMessage(
            self.context_class, f"{host}-{pid}-{self._reports}", fields, round(time.time(), 3), None
        )
        self._exporter._queue.append(ExplicitBatch([message]))

    def fields(self) -> dict[str, Any]:
        snapshot = self._exporter.snapshot()
        sends, mean_ms, max_ms = self._exporter.stats.take_latency()
        fields: dict[str, Any] = {
            "queue_depth": snapshot["queued"],
            "in_flight": snapshot["in_flight"],
            "sends": sends,
            "send_latency_ms_mean": round(mean_ms, 3),
            "send_latency_ms_max": round(max_ms, 3),
        }
        for name in (
            "messages_sent",
            "messages_failed",
            "retries",
            "messages_spooled",
            "dropped_total",
            "contexts",
        ):
            fields[name] = snapshot[name]
        for reason, count in snapshot["dropped"].items():
            fields["dropped_" + re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")[:60]] = count
        return fields
