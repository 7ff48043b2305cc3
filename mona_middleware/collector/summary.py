"""Per-field summaries and chart data of a context class: what a user checks first in Mona.

Summaries are over aggregated contexts, not raw messages, because that is what Mona
segments and alerts on. A field that ``ADD`` turned into a list contributes each of its
elements, so ``latency_ms: [12, 15]`` counts as two latencies.

Everything here is computed in one pass with bounded memory, whatever the class holds:
exact counts, min, max and mean; percentiles, histograms and values over time from a
uniform sample of at most ``SAMPLE`` values per field (exact below it, flagged
``sampled`` above it); at most ``MAX_LABELS`` distinct labels counted per field; at
most ``LIST_ELEMENTS`` elements of one list. Every number answered is finite: means are
sums of ``x / n`` and interpolations are convex combinations, so 1.7e308 cannot overflow
them into ``Infinity``, which JSON cannot carry.

An integer field whose name says it is a code (``http_status_code``, ``status``,
``item_id``, ``errorCode``) is a category: it gets top values, never a mean.
"""

from __future__ import annotations

import math
import random
import re
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

TOP_VALUES = 5  # in /api/summary
CHART_TOP = 10  # bars per categorical field in /api/overview
HISTOGRAM_BINS = 20
MAX_BUCKETS = 60
SEGMENTS = 6
SAMPLE = 200_000
MAX_LABELS = 20_000
LIST_ELEMENTS = 1_000
CLIP_TEXT = 200
SUMMARY_FIELDS = 200
OVERVIEW_FIELDS = 50
# Time buckets a chart may use, in seconds: the smallest that keeps <= MAX_BUCKETS wins.
NICE_STEPS = (
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
    3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 30 * 86400, 365 * 86400,
)  # fmt: skip

_CODE_NAME = re.compile(r"(?:^|[_\-. ])(?:id|code|status)$", re.IGNORECASE)
_CAMEL_CODE = re.compile(r"[a-z0-9](?:Id|ID|Code|Status)$")


def is_code_name(name: str) -> bool:
    """True for field names that label rather than measure (status codes, ids)."""
    return bool(_CODE_NAME.search(name) or _CAMEL_CODE.search(name))


def _is_number(value: object) -> bool:
    kind = type(value)
    return (kind is int or kind is float) and math.isfinite(value)  # type: ignore[arg-type]


def clip_text(text: str, limit: int = CLIP_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def mean_of(values: list[float]) -> float:
    """The mean, never overflowing: ``fsum`` of the values, or of ``x / n`` when that
    would overflow (two values of 1.7e308)."""
    try:
        return math.fsum(values) / len(values)
    except OverflowError:
        count = len(values)
        return math.fsum(value / count for value in values)


def _between(low: float, high: float, weight: float) -> float:
    """``low`` + ``weight`` of the way to ``high``, finite for any finite ends."""
    value = low * (1 - weight) + high * weight
    return min(max(value, low), high)


def quantile(ordered: list[float], numerator: int, denominator: int) -> float:
    """Quantile ``numerator/denominator`` of sorted values, as ``statistics.quantiles``
    (``method="inclusive"``) interpolates it."""
    if len(ordered) == 1:
        return ordered[0]
    index, delta = divmod(numerator * (len(ordered) - 1), denominator)
    if delta == 0:
        return ordered[index]
    return _between(ordered[index], ordered[index + 1], delta / denominator)


def number_stats(values: list[float]) -> dict[str, float | int]:
    """count/mean/p50/p95/min/max; p95 is ``statistics.quantiles`` inclusive, n=20."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "mean": mean_of(ordered),
        "p50": quantile(ordered, 1, 2),
        "p95": quantile(ordered, 19, 20),
        "min": ordered[0],
        "max": ordered[-1],
    }


def clip(value: Any, depth: int = 0, items: int = 20, text: int = CLIP_TEXT) -> tuple[Any, bool]:
    """A bounded copy of a JSON value (long strings, lists, objects and deep nesting cut)
    and whether anything was cut, so list answers stay small whatever was stored."""
    if isinstance(value, str):
        return (value, False) if len(value) <= text else (value[:text] + "…", True)
    if isinstance(value, list):
        if depth >= 3:
            return ("[…]", True) if value else ([], False)
        clipped = [clip(item, depth + 1, items, text) for item in value[:items]]
        cut = len(value) > items or any(was for _, was in clipped)
        out = [item for item, _ in clipped]
        if len(value) > items:
            out.append(f"… {len(value) - items} more")
        return out, cut
    if isinstance(value, dict):
        if depth >= 3:
            return ("{…}", True) if value else ({}, False)
        out_dict: dict[str, Any] = {}
        cut = len(value) > items
        for index, (key, item) in enumerate(value.items()):
            if index >= items:
                break
            out_dict[clip_text(key, text)], was = clip(item, depth + 1, items, text)
            cut = cut or was or len(key) > text
        return out_dict, cut
    return value, False


def _label(value: Any) -> Any:
    # Labels are counted by value; long strings are cut so a class of unique 10 KB
    # strings costs kilobytes, not the strings.
    return clip_text(value) if type(value) is str else value


class _Field:
    """What one field's values look like across the contexts of a class."""

    __slots__ = (
        "code",
        "count",
        "high",
        "labels",
        "labels_capped",
        "low",
        "mean",
        "numbers",
        "other",
        "rng",
        "sample",
        "sample_buckets",
        "sample_segments",
    )  # fmt: skip

    def __init__(self, name: str) -> None:
        self.code = is_code_name(name)
        self.count = 0  # contexts holding the field
        self.numbers = 0
        self.mean = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.sample = array("d")
        self.sample_buckets = array("i")
        self.sample_segments = array("i")
        self.labels: Counter[Any] = Counter()
        self.labels_capped = False
        self.other = 0
        self.rng = random.Random(0)  # a sample that does not change between two reads

    def add(self, value: Any, bucket: int, segment: int) -> None:
        self.count += 1
        if type(value) is list:
            for element in value[:LIST_ELEMENTS]:
                self._add_one(element, bucket, segment)
        else:
            self._add_one(value, bucket, segment)

    def _add_one(self, value: Any, bucket: int, segment: int) -> None:
        kind = type(value)
        if (kind is int or kind is float) and not self.code:
            if not math.isfinite(value):
                self.other += 1
                return
            self.numbers += 1
            self.mean += value / self.numbers - self.mean / self.numbers
            self.low = min(self.low, value)
            self.high = max(self.high, value)
            if len(self.sample) < SAMPLE:
                self.sample.append(value)
                self.sample_buckets.append(bucket)
                self.sample_segments.append(segment)
            else:
                slot = self.rng.randrange(self.numbers)
                if slot < SAMPLE:
                    self.sample[slot] = value
                    self.sample_buckets[slot] = bucket
                    self.sample_segments[slot] = segment
        elif kind is str or kind is bool or kind is int or kind is float:
            label = _label(value)
            if label in self.labels or len(self.labels) < MAX_LABELS:
                self.labels[label] += 1
            else:
                self.labels_capped = True
                self.other += 1
        else:
            self.other += 1

    @property
    def sampled(self) -> bool:
        return self.numbers > len(self.sample)

    def kind(self) -> str:
        if self.numbers and self.numbers >= sum(self.labels.values()):
            return "number"
        return "category" if self.labels else "other"

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.sample)
        stats = number_stats(ordered)
        stats.update(count=self.numbers, min=self.low, max=self.high)
        if self.sampled:
            stats["mean"] = min(max(self.mean, self.low), self.high)
            stats["sampled"] = True
        return stats

    def top(self, count: int) -> list[dict[str, Any]]:
        return [{"value": value, "count": n} for value, n in self.labels.most_common(count)]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "kind": self.kind()}
        if self.numbers:
            out["numbers"] = self.stats()
        if self.labels:
            out["top"] = self.top(TOP_VALUES)
            out["distinct"] = len(self.labels)
            if self.labels_capped:
                out["distinct_capped"] = True
        if self.other:
            out["other"] = self.other
        return out


def _fields_by_count(tallies: dict[str, _Field], limit: int) -> list[str]:
    return sorted(tallies, key=lambda name: (-tallies[name].count, name))[:limit]


def summarize(records: Iterable[Mapping[str, Any]], limit: int = SUMMARY_FIELDS) -> dict[str, Any]:
    """Summaries of the ``limit`` most common fields of ``records`` (context fields).

    >>> summarize([{"a": 1}, {"a": [2, 3], "b": "x"}])["fields"]["a"]["numbers"]["mean"]
    2.0
    """
    tallies: dict[str, _Field] = {}
    contexts = 0
    for record in records:
        contexts += 1
        for name, value in record.items():
            tally = tallies.get(name)
            if tally is None:
                tally = tallies[name] = _Field(name)
            tally.add(value, 0, 0)
    chosen = sorted(_fields_by_count(tallies, limit))
    return {
        "contexts": contexts,
        "fields": {name: tallies[name].summary() for name in chosen},
        "fields_total": len(tallies),
        "truncated": len(tallies) > len(chosen),
    }


def time_buckets(first: float | None, last: float | None) -> tuple[float, float, int]:
    """(start, step, count): at most ``MAX_BUCKETS`` buckets of a "nice" width covering
    ``first``..``last``."""
    if first is None or last is None or not (math.isfinite(first) and math.isfinite(last)):
        return 0.0, 1.0, 1
    span = last / 2 - first / 2  # halves: a span of +-1.7e308 must not overflow
    for step in NICE_STEPS:
        if span * 2 / step < MAX_BUCKETS - 1:
            start = min(math.floor(first / step) * step, first)
            count = int((last - start) // step) + 1
            return start, float(step), min(max(count, 1), MAX_BUCKETS)
    step = span / (MAX_BUCKETS - 1) * 2
    return first, step, MAX_BUCKETS


def bucket_of(moment: float, start: float, step: float, count: int) -> int:
    index = int((moment / 2 - start / 2) / step * 2) if step > 0 else 0
    return min(max(index, 0), count - 1)


def _histogram(ordered: list[float], low: float, high: float) -> dict[str, Any]:
    """Equal bins from ``low`` to ``high``, one bin per value for a small integer range;
    bin ``i`` holds ``edges[i] <= x < edges[i + 1]``, the last one its upper edge too."""
    low, high = float(low), float(high)
    integers = all(value.is_integer() for value in ordered)
    if integers and high - low < HISTOGRAM_BINS:
        edges = [low + offset for offset in range(int(high - low) + 2)]
    elif high == low:
        edges = [low, high]
    else:
        edges = [_between(low, high, index / HISTOGRAM_BINS) for index in range(HISTOGRAM_BINS)]
        edges.append(high)
    return {"edges": edges, "integers": integers, "counts": _counts(ordered, edges)}


def _counts(ordered: list[float], edges: list[float]) -> list[int]:
    """How many of the sorted values fall in each bin: a bisection per edge."""
    bounds = [0, *(bisect_left(ordered, edge) for edge in edges[1:-1]), len(ordered)]
    return [bounds[index + 1] - bounds[index] for index in range(len(edges) - 1)]


def _quantiles(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "mean": mean_of(ordered),
        "p50": quantile(ordered, 1, 2),
        "p95": quantile(ordered, 19, 20),
    }


class Overview:
    """Chart data of one class, fed its contexts one at a time (``add``), then ``result``.

    ``split`` names a field whose value per context (its first element for a list)
    segments every numeric field: the ``SEGMENTS`` most common values and the rest.
    """

    def __init__(
        self, first_time: float | None, last_time: float | None, split: str | None = None
    ) -> None:
        self.start, self.step, self.buckets = time_buckets(first_time, last_time)
        self.timeline = [0] * self.buckets
        self.split = split
        self.segment_ids: dict[Any, int] = {}
        self.segment_counts: Counter[int] = Counter()
        self.tallies: dict[str, _Field] = {}
        self.contexts = 0

    def _segment(self, record: Mapping[str, Any]) -> int:
        if self.split is None:
            return 0
        value = record.get(self.split)
        if type(value) is list:
            value = value[0] if value else None
        if not (value is None or type(value) in (str, bool, int, float)):
            value = None
        key = _label(value)
        index = self.segment_ids.get(key)
        if index is None:
            if len(self.segment_ids) >= MAX_LABELS:
                return -1  # counted under "other"
            index = self.segment_ids[key] = len(self.segment_ids)
        self.segment_counts[index] += 1
        return index

    def add(self, record: Mapping[str, Any], moment: float) -> None:
        self.contexts += 1
        bucket = bucket_of(moment, self.start, self.step, self.buckets)
        self.timeline[bucket] += 1
        segment = self._segment(record)
        tallies = self.tallies
        for name, value in record.items():
            tally = tallies.get(name)
            if tally is None:
                tally = tallies[name] = _Field(name)
            tally.add(value, bucket, segment)

    def result(self) -> dict[str, Any]:
        chosen = _fields_by_count(self.tallies, OVERVIEW_FIELDS)
        segments = self._top_segments()
        return {
            "contexts": self.contexts,
            "timeline": {"start": self.start, "step": self.step, "counts": self.timeline},
            "fields": [self._field(name, segments) for name in chosen],
            "fields_total": len(self.tallies),
            "fields_truncated": len(self.tallies) > len(chosen),
            "splittable": sorted(
                name
                for name, tally in self.tallies.items()
                if tally.kind() == "category" and len(tally.labels) >= 2
            )[:OVERVIEW_FIELDS],
            "split": self._split_info(segments),
        }

    def _top_segments(self) -> list[int]:
        return [index for index, _ in self.segment_counts.most_common(SEGMENTS)]

    def _split_info(self, segments: list[int]) -> dict[str, Any] | None:
        if self.split is None:
            return None
        labels = {index: value for value, index in self.segment_ids.items()}
        shown = sum(self.segment_counts[index] for index in segments)
        return {
            "field": self.split,
            "values": [
                {"value": labels[index], "contexts": self.segment_counts[index]}
                for index in segments
            ],
            "other_contexts": self.contexts - shown,
        }

    def _field(self, name: str, segments: list[int]) -> dict[str, Any]:
        tally = self.tallies[name]
        out: dict[str, Any] = {"name": name, **tally.summary()}
        if tally.labels:
            out["top"] = tally.top(CHART_TOP)
            out["top_other"] = sum(tally.labels.values()) - sum(t["count"] for t in out["top"])
        if tally.numbers:
            out["numbers"].update(self._number_charts(tally, segments))
        return out

    def _number_charts(self, tally: _Field, segments: list[int]) -> dict[str, Any]:
        values = list(tally.sample)
        histogram = _histogram(sorted(values), tally.low, tally.high)
        by_bucket: dict[int, list[float]] = {}
        for value, bucket in zip(values, tally.sample_buckets, strict=True):
            by_bucket.setdefault(bucket, []).append(value)
        over_time = [
            {"bucket": bucket, **_quantiles(found)} for bucket, found in sorted(by_bucket.items())
        ]
        charts: dict[str, Any] = {"histogram": histogram, "over_time": over_time}
        if self.split is not None:
            charts["segments"] = self._segment_histograms(tally, segments, histogram["edges"])
        return charts

    def _segment_histograms(
        self, tally: _Field, segments: list[int], edges: list[float]
    ) -> list[dict[str, Any]]:
        groups: dict[int, list[float]] = {index: [] for index in segments}
        rest: list[float] = []
        for value, segment in zip(tally.sample, tally.sample_segments, strict=True):
            groups.get(segment, rest).append(value)
        labels = {index: value for value, index in self.segment_ids.items()}
        out = []
        for index in segments:
            found = sorted(groups[index])
            entry: dict[str, Any] = {"value": labels[index], "count": len(found)}
            if found:
                entry.update(_quantiles(found))
            entry["counts"] = _counts(found, edges)
            out.append(entry)
        if rest:
            rest.sort()
            out.append({"other": True, **_quantiles(rest), "counts": _counts(rest, edges)})
        return out
