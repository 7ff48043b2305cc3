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
from collections.abc import Callable
from typing import Any

from .._util.stats import ExportStats
from ..config import MonaConfig
from .items import ExplicitBatch, ExplicitMessage

__all__ = ["SelfMetrics"]


class SelfMetrics:
    """Builds the exporter's reports on itself; the exporter queues them.

    It is handed what it reads (the exporter's ``snapshot``, its stats, the kill switch)
    rather than reaching into the exporter.
    """

    def __init__(
        self,
        config: MonaConfig,
        snapshot: Callable[[], dict[str, Any]],
        stats: ExportStats,
        switched_off: Callable[[], bool],
    ) -> None:
        self.interval = config.self_metrics_interval
        self.context_class = config.self_metrics_class
        self._snapshot = snapshot
        self._stats = stats
        self._switched_off = switched_off
        self._next = time.monotonic() + self.interval
        self._reports = 0

    def due_report(self) -> ExplicitBatch | None:
        """The report to queue, if one is due (called by the batching thread)."""
        if not self.interval or time.monotonic() < self._next:
            return None
        self._next = time.monotonic() + self.interval
        if self._switched_off():  # the kill switch silences the exporter's own reports too
            return None
        self._reports += 1
        host, pid = socket.gethostname(), os.getpid()
        fields = self.fields() | {"host": host, "pid": pid}
        message = ExplicitMessage(
            self.context_class, f"{host}-{pid}-{self._reports}", fields, round(time.time(), 3), None
        )
        return ExplicitBatch([message])

    def fields(self) -> dict[str, Any]:
        snapshot = self._snapshot()
        sends, mean_ms, max_ms = self._stats.take_latency()
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
