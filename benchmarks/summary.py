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


def backfill_summary(rows: list[Row]) -> dict[str, Row]:
    """Per loop body: contexts/s bare and with us (all-in: the final flush included), the
    ratio paired by round, CPU per context, and whether every context arrived."""
    out: dict[str, Row] = {}
    for body in sorted({r["body"] for r in rows}):
        group = [r for r in rows if r["body"] == body]
        bare = {r["round"]: r for r in group if r["variant"] == "bare"}
        ours = [r for r in group if r["variant"] == "ours"]
        ratios = [
            r["all_in_contexts_per_s"] / bare[r["round"]]["contexts_per_s"]
            for r in ours
            if r["round"] in bare
        ]
        added_us = [
            (r["all_in_s"] - bare[r["round"]]["loop_s"]) / r["contexts"] * 1e6
            for r in ours
            if r["round"] in bare
        ]
        out[body] = {
            "rounds": len(ours),
            "contexts": group[0]["contexts"],
            "bare_per_s": median_of(bare.values(), "contexts_per_s"),
            "bare_us": median([r["loop_s"] / r["contexts"] * 1e6 for r in bare.values()]),
            "ours_loop_per_s": median_of(ours, "contexts_per_s"),
            "ours_per_s": median_of(ours, "all_in_contexts_per_s"),
            "ratio": median(ratios),
            "added_us": median(added_us),
            "bare_cpu_us": median(
                [r["cpu_s"] / r["contexts"] * 1e6 for r in bare.values() if r.get("cpu_s")]
            ),
            "ours_cpu_us": median(
                [r["cpu_s"] / r["contexts"] * 1e6 for r in ours if r.get("cpu_s")]
            ),
            "peak_mb": median_of(ours, "peak_mb"),
            "waits": median_of(ours, "queue_waits"),
            "delivered": all(r["received"] == r["contexts"] and not r["dropped"] for r in ours),
        }
    return out


def live_split(held: list[Row], live: list[Row]) -> dict[str, Row]:
    """Per framework: the full variant (3 exports) held back and live, same machine, one run.

    *total CPU* is every thread's CPU per request over the loop and the flush after it.
    """
    out: dict[str, Row] = {}
    live_by = {h["framework"]: h["layers"] for h in live}
    for h in held:
        framework = h["framework"]
        if framework not in live_by:
            continue
        names = list(h["layers"])
        bare_held, full_held = h["layers"][names[0]], h["layers"][names[-1]]
        live_layers = live_by[framework]
        live_names = list(live_layers)
        bare_live, full_live = live_layers[live_names[0]], live_layers[live_names[-1]]
        out[framework] = {
            "variant": names[-1],
            "held_request_us": full_held["request_us"] - bare_held["request_us"],
            "held_exporter_cpu_us": full_held["background_cpu_us"],
            "held_total_cpu_us": full_held.get("total_cpu_us"),
            "held_added_cpu_us": _minus(
                full_held.get("total_cpu_us"), bare_held.get("total_cpu_us")
            ),
            "live_request_us": full_live["request_us"] - bare_live["request_us"],
            "live_flush_cpu_us": full_live["background_cpu_us"],
            "live_total_cpu_us": full_live.get("total_cpu_us"),
            "live_added_cpu_us": _minus(
                full_live.get("total_cpu_us"), bare_live.get("total_cpu_us")
            ),
            "cpu_ratio": (
                full_live["total_cpu_us"] / full_held["total_cpu_us"]
                if full_live.get("total_cpu_us") and full_held.get("total_cpu_us")
                else None
            ),
        }
    return out


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def instruction_parts(row: dict[str, Any]) -> dict[str, float] | None:
    """Ours added, split: request thread, prepare, the rest, and the collector's share."""
    on, off, split = row["tools"], row.get("collector_off") or {}, row.get("split") or {}
    needed = ("bare" in on, "ours" in on, "bare" in off, "ours" in off)
    if not all(needed) or not {"request", "prepare"} <= set(split):
        return None
    return {
        "added": on["ours"] - on["bare"],
        "added_collector_off": off["ours"] - off["bare"],
        "request": split["request"] - off["bare"],
        "prepare": split["prepare"] - split["request"],
        "rest": off["ours"] - split["prepare"],
        "collection": (on["ours"] - off["ours"]) - (on["bare"] - off["bare"]),
        "per_message": off["ours"] - split["request"],  # prepare, encode, POST: one each
    }
