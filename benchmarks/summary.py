"""Medians over rounds and paired deltas against bare: what every table is built from.

"Added" and "ratio" figures are paired by round (each round's tool against the same
round's bare app), then the median over rounds is taken, so slow drifts of the machine
cancel out instead of landing on whichever tool ran during them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from .common import median

Row = dict[str, Any]


def _paired(
    rows: list[Row], key: str, combine: Callable[[float, float], float]
) -> dict[tuple[str, str], float | None]:
    """Per (framework, tool): the median over rounds of combine(tool's value, bare's value)."""
    bare = {(r["framework"], r["round"]): r[key] for r in rows if r["tool"] == "bare"}
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        base = bare.get((r["framework"], r["round"]))
        if base is not None and r.get(key) is not None:
            values[(r["framework"], r["tool"])].append(combine(r[key], base))
    return {combo: median(v) for combo, v in values.items()}


def median_of(rows: Iterable[Row], key: str) -> float | None:
    return median([r.get(key) for r in rows])


def _grouped(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r["framework"], r["tool"])].append(r)
    return groups


def summarize_inprocess(rows: list[Row]) -> dict[tuple[str, str], Row]:
    minus = lambda a, b: a - b  # noqa: E731
    added = {key: _paired(rows, key, minus) for key in ("mean_us", "p99_us", "allin_us", "cpu_us")}
    ratio = _paired(rows, "allin_us", lambda a, b: a / b)
    summary = {}
    for combo, group in _grouped(rows).items():
        expected = [r["expected"] for r in group if r.get("expected") is not None]
        received = [r["received"] for r in group if r.get("received") is not None]
        summary[combo] = {
            "rounds": len(group),
            "requests": group[0]["requests"],
            **{k: median_of(group, k) for k in ("mean_us", "p50_us", "p99_us", "allin_us")},
            "cpu_us": median_of(group, "cpu_us"),
            "flush_ms": median_of(group, "flush_ms"),
            "added_mean_us": added["mean_us"].get(combo),
            "added_p99_us": added["p99_us"].get(combo),
            "added_allin_us": added["allin_us"].get(combo),
            "added_cpu_us": added["cpu_us"].get(combo),
            "allin_ratio": ratio.get(combo),
            "unit": group[0].get("unit"),
            "expected": sum(expected) if expected else None,
            "received": sum(received) if received else None,
            "served": sum(r["warmup"] + r["requests"] for r in group),
            "non_200": sum(r["non_200"] for r in group),
            "flushed": all(r["flushed"] for r in group),
        }
    return summary


def spans_per_request(inprocess: dict[tuple[str, str], Row], framework: str) -> float | None:
    row = inprocess.get((framework, "otel"))
    if not row or not row["expected"]:
        return None
    return row["expected"] / row["served"]


def summarize_servers(rows: list[Row], inprocess: dict[tuple[str, str], Row]) -> dict:
    ratio = _paired(rows, "rps", lambda a, b: a / b)
    p99_added = _paired(rows, "p99_us", lambda a, b: a - b)
    p50_added = _paired(rows, "p50_us", lambda a, b: a - b)
    summary = {}
    for combo, group in _grouped(rows).items():
        framework, tool = combo
        per_request = 1.0
        if tool == "otel":
            per_request = spans_per_request(inprocess, framework)
        served = sum(r["served"] for r in group)
        expected = None
        if tool != "bare" and per_request is not None:
            expected = round(served * per_request)
        summary[combo] = {
            "rounds": len(group),
            "server": group[0]["server"],
            "rps": median_of(group, "rps"),
            "p50_us": median_of(group, "p50_us"),
            "p99_us": median_of(group, "p99_us"),
            "rps_ratio": ratio.get(combo),
            "p50_added_us": p50_added.get(combo),
            "p99_added_us": p99_added.get(combo),
            "served": served,
            "expected": expected,
            "received": None if tool == "bare" else sum(r["received"] or 0 for r in group),
            "unit": group[0].get("unit"),
            "errors": sum(r["non_2xx"] + r["socket_errors"] for r in group),
            "sink_cpu_ms_per_s": median(
                [r["sink"]["sink_cpu_s"] * 1000 / r["seconds"] for r in group]
            ),
            "sentry_discarded": _discarded(group) if tool == "sentry" else None,
        }
    return summary


def _discarded(group: list[Row]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for r in group:
        for key, count in r["sink"]["sentry"]["discarded"].items():
            total[key] += count
    return dict(total)


def exporter_summary(rows: list[Row]) -> Row:
    return {
        "messages": rows[0]["messages"],
        "msgs_per_s": median_of(rows, "msgs_per_s"),
        "msgs_per_post": median_of(rows, "msgs_per_post"),
        "connections_during_run": median_of(rows, "connections_during_run"),
        "connections": median_of(rows, "connections"),
        "produce_s": median_of(rows, "produce_seconds"),
        "seconds": median_of(rows, "seconds"),
        "sink_cpu_s": median_of(rows, "sink_cpu_s"),
        "all_received": all(r["received"] == r["messages"] for r in rows),
        "rounds": len(rows),
    }


def memory_summary(rows: list[Row], spool: bool) -> Row | None:
    group = [r for r in rows if r["spool"] is spool]
    if not group:
        return None
    dropped = [sum((r["dropped"] or {}).values()) for r in group]
    return {
        "exports": group[0]["exports"],
        "rounds": len(group),
        **{
            k: median_of(group, k)
            for k in ("rss_before_mb", "rss_after_mb", "rss_after_gc_mb", "rss_peak_mb")
        },
        "queued": median_of(group, "queued"),
        "in_flight": median_of(group, "in_flight"),
        "dropped": median(dropped),
        "spooled": median_of(group, "spooled"),
        "export_s": median_of(group, "export_seconds"),
        "shutdown_s": median_of(group, "shutdown_seconds"),
    }
