"""Per-field summaries of a context class: what a user checks first in Mona's UI.

Summaries are over aggregated contexts, not raw messages, because that is what Mona
segments and alerts on. A field that ``ADD`` turned into a list contributes each of its
elements, so ``latency_ms: [12, 15]`` counts as two latencies.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

TOP_VALUES = 5


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number_stats(values: list[float]) -> dict[str, float | int]:
    """count/mean/p50/p95/min/max; p95 is ``statistics.quantiles`` inclusive, n=20."""
    ordered = sorted(values)
    if len(ordered) > 1:
        p95 = statistics.quantiles(ordered, n=20, method="inclusive")[18]
    else:
        p95 = ordered[0]
    return {
        "count": len(ordered),
        "mean": statistics.fmean(ordered),
        "p50": statistics.median(ordered),
        "p95": p95,
        "min": ordered[0],
        "max": ordered[-1],
    }


class _FieldTally:
    """What one field's values look like across the contexts of a class."""

    def __init__(self) -> None:
        self.count = 0
        self.numbers: list[float] = []
        self.labels: Counter[str | bool] = Counter()

    def add(self, value: Any) -> None:
        self.count += 1
        for element in value if isinstance(value, list) else [value]:
            if _is_number(element):
                self.numbers.append(element)
            elif isinstance(element, (str, bool)):
                self.labels[element] += 1

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count}
        if self.numbers:
            out["numbers"] = number_stats(self.numbers)
        if self.labels:
            top = self.labels.most_common(TOP_VALUES)
            out["top"] = [{"value": value, "count": count} for value, count in top]
            out["distinct"] = len(self.labels)
        return out


def summarize(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Summaries for every field seen in ``records`` (aggregated context fields).

    >>> summarize([{"a": 1}, {"a": [2, 3], "b": "x"}])["fields"]["a"]["numbers"]["mean"]
    2.0
    """
    tallies: dict[str, _FieldTally] = {}
    contexts = 0
    for record in records:
        contexts += 1
        for name, value in record.items():
            tallies.setdefault(name, _FieldTally()).add(value)
    fields = {name: tallies[name].result() for name in sorted(tallies)}
    return {"contexts": contexts, "fields": fields}
