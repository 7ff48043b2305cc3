"""Counters behind ``stats()``: what was sent, refused, dropped and why.

Only the exporter's threads and rare error paths touch these, so a lock is fine here;
the request's hot path never does.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class ExportStats:
    """Thread-safe counters; ``snapshot()`` is what ``mona_middleware.stats()`` returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._latency = [0, 0.0, 0.0]  # sends, total seconds, max seconds (since last read)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def drop(self, reason: str, amount: int) -> None:
        """Messages that will never reach the backend, by reason."""
        if amount:
            with self._lock:
                self._dropped[reason] += amount

    def reject(self, reasons: Counter[str]) -> None:
        """Messages the backend refused, by the backend's own reason."""
        with self._lock:
            self._rejected.update(reasons)

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            latency = self._latency
            latency[0] += 1
            latency[1] += seconds
            latency[2] = max(latency[2], seconds)

    def take_latency(self) -> tuple[int, float, float]:
        """(sends, mean ms, max ms) since the last call, for self-metrics."""
        with self._lock:
            count, total, peak = self._latency
            self._latency = [0, 0.0, 0.0]
        return count, (total / count * 1000 if count else 0.0), peak * 1000

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._counts)
            dropped = dict(self._dropped)
            rejected = dict(self._rejected)
        return {
            "contexts": counts.get("contexts", 0),
            "messages_sent": counts.get("messages_sent", 0),
            "messages_failed": counts.get("messages_failed", 0),
            "batches_sent": counts.get("batches_sent", 0),
            "batches_failed": counts.get("batches_failed", 0),
            "retries": counts.get("retries", 0),
            "messages_spooled": counts.get("messages_spooled", 0),
            "messages_resent_from_spool": counts.get("messages_resent_from_spool", 0),
            "contexts_sampled_out": counts.get("contexts_sampled_out", 0),
            "fields_dropped": counts.get("fields_dropped", 0),
            "exports_refused": counts.get("exports_refused", 0),
            "exports_outside_context": counts.get("exports_outside_context", 0),
            # incoming baggage that asked to continue a context and was not valid
            "incoming_contexts_ignored": counts.get("incoming_contexts_ignored", 0),
            "queue_waits": counts.get("queue_waits", 0),
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
            "failure_reasons": rejected,
        }
