"""Counters behind ``stats()``: what was sent, refused, dropped and why.

Counting takes no lock: each count is appended to a deque (atomic in CPython) and
folded into the totals by whoever reads them. So a signal handler that reads
``stats()`` or counts a drop while the code it interrupted was counting cannot wait for
a lock its own thread holds, and the batcher pays a C append per count, not a lock.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

__all__ = ["ExportStats"]

_COUNT, _DROP, _REJECT, _LATENCY = range(4)
# Fold the log into the totals once it holds this many entries, so it never grows large
# in a process that nobody asks for stats().
_FOLD_AT = 4096

# What ``snapshot()`` reports under each counter's name, in this order.
COUNTERS = (
    "contexts",
    "messages_sent",
    "messages_failed",
    "batches_sent",
    "batches_failed",
    "retries",
    "messages_spooled",
    "messages_resent_from_spool",
    # messages of a batch sent again after a send whose fate was unknown (a timeout), to a
    # backend that did not say it honours idempotency keys: they may be stored twice
    "possibly_duplicated",
    "contexts_sampled_out",
    "fields_dropped",
    "exports_refused",
    "exports_outside_context",
    # incoming baggage that asked to continue a context and was not valid
    "incoming_contexts_ignored",
    # context_id_header values that could not be an id (the request got a new one)
    "context_id_headers_ignored",
    # request contexts closed when their WSGI body was collected without close()
    "contexts_closed_unclosed_body",
    "queue_waits",
)


class ExportStats:
    """Counters safe from any thread and from signal handlers; ``snapshot()`` is what
    ``mona_middleware.stats()`` returns."""

    def __init__(self) -> None:
        self._log: deque[tuple[int, Any, Any]] = deque()
        self._fold_lock = threading.Lock()  # only ever tried, never waited for
        self._counts: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        # sends (an int), total seconds, max seconds (since the last read)
        self._latency: list[Any] = [0, 0.0, 0.0]
        self._adopted: list[ExportStats] = []  # read with this one (``adopt``)

    def add(self, name: str, amount: int = 1) -> None:
        log = self._log
        log.append((_COUNT, name, amount))
        if len(log) > _FOLD_AT:
            self._fold()

    def drop(self, reason: str, amount: int) -> None:
        """Messages that will never reach the backend, by reason."""
        if amount:
            self._log.append((_DROP, reason, amount))

    def reject(self, reasons: Counter[str]) -> None:
        """Messages the backend refused, by the backend's own reason."""
        if reasons:
            self._log.append((_REJECT, Counter(reasons), None))

    def adopt(self, other: ExportStats) -> None:
        """Read ``other``'s counts as this ledger's from now on, live: a count that lands
        in it after the hand-over (a thread that had it in hand) is not lost."""
        self._adopted.append(other)

    def observe_latency(self, seconds: float) -> None:
        self._log.append((_LATENCY, seconds, None))

    def take_latency(self) -> tuple[int, float, float]:
        """(sends, mean ms, max ms) since the last call, for self-metrics."""
        self._fold(wait=True)
        count, total, peak = self._latency
        self._latency = [0, 0.0, 0.0]
        return count, (total / count * 1000 if count else 0.0), peak * 1000

    def get(self, name: str) -> int:
        counts, _, _ = self._read()
        return counts.get(name, 0)

    def snapshot(self) -> dict[str, Any]:
        counts, dropped, rejected = self._read()
        data: dict[str, Any] = {name: counts.get(name, 0) for name in COUNTERS}
        data["dropped"] = dropped
        data["dropped_total"] = sum(dropped.values())
        data["failure_reasons"] = rejected
        return data

    def _read(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """Copies of the totals with every count logged so far, without waiting for anyone.

        When another thread (or the code a signal handler interrupted) is folding, the
        entries it has not folded yet are added to the copies instead.
        """
        folded = self._fold()
        counts, dropped = dict(self._counts), dict(self._dropped)
        rejected = dict(self._rejected)
        if not folded:
            for kind, name, amount in list(self._log):
                if kind == _COUNT:
                    counts[name] = counts.get(name, 0) + amount
                elif kind == _DROP:
                    dropped[name] = dropped.get(name, 0) + amount
                elif kind == _REJECT:
                    for reason, count in name.items():
                        rejected[reason] = rejected.get(reason, 0) + count
        for other in self._adopted:
            for total, more in zip((counts, dropped, rejected), other._read(), strict=True):
                for name, amount in more.items():
                    total[name] = total.get(name, 0) + amount
        return counts, dropped, rejected

    def _fold(self, wait: bool = False) -> bool:
        """Move logged counts into the totals; False when another folder holds the lock."""
        if not self._fold_lock.acquire(blocking=wait, timeout=1 if wait else -1):
            return False
        try:
            log, counts, latency = self._log, self._counts, self._latency
            while log:
                kind, name, amount = log.popleft()
                if kind == _COUNT:
                    counts[name] += amount
                elif kind == _DROP:
                    self._dropped[name] += amount
                elif kind == _REJECT:
                    self._rejected.update(name)
                else:
                    latency[0] += 1
                    latency[1] += name
                    latency[2] = max(latency[2], name)
        finally:
            self._fold_lock.release()
        return True
