"""The detailed sections of RESULTS.md: in-process, real servers, exporter, memory, profile."""

from __future__ import annotations

from .common import FRAMEWORKS, TOOLS
from .labels import LABELS
from .markdown import DASH, TIMES, Row, delivered, f, signed, table
from .summary import exporter_summary, instruction_parts, memory_summary


def section_inprocess(inproc: dict) -> str:
    parts = []
    for fw in FRAMEWORKS:
        rows = []
        for tool in TOOLS:
            r = inproc.get((fw, tool))
            if not r:
                continue
            rows.append(
                [
                    LABELS[tool],
                    f"{r['requests']:,} {TIMES} {r['rounds']}",
                    f(r["mean_us"]),
                    f(r["p50_us"]),
                    f(r["p99_us"]),
                    signed(r["added_mean_us"]),
                    signed(r["added_p99_us"]),
                    f(r["flush_ms"], 2),
                    f(r["allin_us"]),
                    signed(r["added_allin_us"]),
                    f(r["allin_ratio"], 2) + TIMES if r["allin_ratio"] else DASH,
                    f(r["cpu_us"]),
                    delivered(r),
                ]
            )
        if rows:
            parts += [
                f"### {fw}",
                "",
                table(
                    [
                        "tool",
                        f"requests {TIMES} rounds",
                        "mean µs",
                        "p50",
                        "p99",
                        "added mean",
                        "added p99",
                        "final flush ms",
                        "all-in µs",
                        "added all-in",
                        "all-in / bare",
                        "CPU µs (all threads)",
                        "received / expected",
                    ],
                    rows,
                ),
                "",
            ]
    return "\n".join(parts)


def section_servers(servers: dict, results: Row) -> str:
    plan = results["plan"]
    rows = []
    for fw in FRAMEWORKS:
        for tool in TOOLS:
            s = servers.get((fw, tool))
            if not s:
                continue
            rows.append(
                [
                    f"{s['server']} + {fw}",
                    LABELS[tool],
                    f(s["rps"], 0),
                    f(s["rps_ratio"], 3) + TIMES if s["rps_ratio"] else DASH,
                    f(s["p50_us"] / 1000, 2),
                    f(s["p99_us"] / 1000, 2),
                    signed(s["p99_added_us"] / 1000 if s["p99_added_us"] is not None else None, 2),
                    str(s["errors"]),
                    delivered(s),
                    f(s["sink_cpu_ms_per_s"], 0),
                ]
            )
    notes = []
    for s in servers.values():
        if s.get("sentry_discarded"):
            counts = ", ".join(f"{k} {v:,}" for k, v in s["sentry_discarded"].items())
            notes.append(f"- Sentry under {s['server']} reported discarding: {counts}.")
    return "\n".join(
        [
            f"`wrk -t1 -c{plan['connections']} -d{plan['server_seconds']:.0f}s --latency` "
            f"after a {plan['server_warmup']:.0f} s warm-up, {results['load_generator']} as "
            "load generator, the server stopped with SIGTERM afterwards. *received / expected* "
            "counts every request the app served (warm-up included) against what reached the "
            "sink once the server had exited. *sink CPU* is the local sinks' CPU per second of "
            "load: it runs on the same 2 cores and slows the server a little, more for the "
            "tools that send more.",
            "",
            table(
                [
                    "server",
                    "tool",
                    "req/s",
                    "vs bare",
                    "p50 ms",
                    "p99 ms",
                    "p99 added ms",
                    "errors",
                    "received / expected",
                    "sink CPU ms/s",
                ],
                rows,
            ),
            "",
            *notes,
        ]
    )


def section_exporter(rows: list[Row]) -> str:
    ex = exporter_summary(rows)
    return "\n".join(
        [
            f"{ex['messages']:,} request-like contexts (3 exports each → 1 message) produced by "
            "one thread as fast as it can, sent with the default settings (500 messages per "
            "POST, 2 sender threads) to the local Mona server, which validates every message; "
            f"median of {ex['rounds']} rounds.",
            "",
            table(
                [
                    "messages/s",
                    "messages per POST",
                    "new connections during the run",
                    "connections incl. token",
                    "producing took s",
                    "until flushed s",
                    "sink CPU s",
                    "all received",
                ],
                [
                    [
                        f(ex["msgs_per_s"], 0),
                        f(ex["msgs_per_post"], 0),
                        f(ex["connections_during_run"], 0),
                        f(ex["connections"], 0),
                        f(ex["produce_s"], 2),
                        f(ex["seconds"], 2),
                        f(ex["sink_cpu_s"], 2),
                        str(ex["all_received"]),
                    ]
                ],
            ),
        ]
    )


def section_memory(runs: list[Row]) -> str:
    rows = []
    for spool in (False, True):
        m = memory_summary(runs, spool)
        if m:
            rows.append(
                [
                    "on (temp dir)" if spool else "off",
                    f"{m['exports']:,}",
                    f(m["rss_before_mb"]),
                    f(m["rss_after_mb"]),
                    f(m["rss_peak_mb"]),
                    f(m["queued"], 0),
                    f(m["in_flight"], 0),
                    f(m["dropped"], 0),
                    f(m["spooled"], 0),
                    f(m["export_s"], 2),
                    f(m["shutdown_s"], 2),
                ]
            )
    return "\n".join(
        [
            "A subprocess exports request-like contexts (3 exports each) as fast as it can to a "
            "port where nothing listens (token and export URLs). RSS is VmRSS before the first "
            "export and right after the last; the queue holds at most 10,000 contexts "
            "(default `queue_size`), the rest is counted as dropped (or spooled); with the "
            "batches in flight (retrying) that accounts for every export.",
            "",
            table(
                [
                    "spool",
                    "exports",
                    "RSS before MB",
                    "RSS after MB",
                    "peak MB",
                    "queued",
                    "in flight",
                    "dropped (counted)",
                    "spooled",
                    "exporting took s",
                    "shutdown(2) took s",
                ],
                rows,
            ),
        ]
    )


def section_profile(hotpath: list[Row]) -> str:
    if not hotpath:
        return "Not run."
    parts = [
        "Each framework's app with one layer of ours added at a time; the exporter is held "
        "back during the loop, so *request µs* is the request thread alone and *exporter "
        "CPU µs* is what the exporter's threads then spend per request (prepare, JSON, POST).",
        "",
    ]
    rows = []
    for h in hotpath:
        bare = next(iter(h["layers"].values()))["request_us"]
        for name, layer in h["layers"].items():
            rows.append(
                [
                    h["framework"],
                    name,
                    f(layer["request_us"]),
                    signed(layer["request_us"] - bare),
                    f(layer["background_cpu_us"]),
                ]
            )
    parts += [
        table(["framework", "variant", "request µs", "vs bare", "exporter CPU µs"], rows),
        "",
    ]
    flask = next((h for h in hotpath if "profile" in h), None)
    if flask:
        rows = [
            [
                f"`{p['function']}`",
                f(p["calls_per_request"], 0),
                f(p["own_us"], 2),
                f(p["cumulative_us"], 2),
            ]
            for p in flask["profile"]
        ]
        bg = flask["background"]
        parts += [
            "cProfile of Flask + `MonaFlask` + 3 exports, our functions only, per request "
            "(cProfile roughly doubles the cost of small Python functions; compare rows with "
            "each other, not with the timings above):",
            "",
            table(["function", "calls", "own µs", "cumulative µs"], rows),
            "",
            f"The exporter's work per message, timed outside the threads: `prepare()` "
            f"(coalesce, convert, context id, wire dict) **{bg['prepare_us']:.1f} µs**, JSON "
            f"encoding **{bg['json_us']:.1f} µs** with {bg.get('encoder', 'json')} "
            f"({bg['message_bytes']} bytes per message; the standard library's json: "
            f"{bg.get('json_us_by_encoder', {}).get('json', bg['json_us']):.1f} µs). "
            "Profile of `prepare()`:",
            "",
            table(
                ["function", "calls", "own µs", "cumulative µs"],
                [
                    [
                        f"`{p['function']}`",
                        f(p["calls_per_request"], 0),
                        f(p["own_us"], 2),
                        f(p["cumulative_us"], 2),
                    ]
                    for p in bg["profile"]
                ],
            ),
        ]
    return "\n".join(parts)


def section_backfill(backfill: dict[str, Row]) -> str:
    """``benchmarks.backfill`` in every round: the loop of the jobs issue, with and without us."""
    rows = [
        [
            body,
            f(b["bare_us"], 2),
            f(b["bare_per_s"], 0),
            f(b["ours_loop_per_s"], 0),
            f(b["ours_per_s"], 0),
            f"{f(b['ratio'], 2)}{TIMES}",
            f(b["added_us"], 1),
            f"{f(b['bare_cpu_us'], 1)} / {f(b['ours_cpu_us'], 1)}",
            f(b["waits"], 0),
            str(b["delivered"]),
        ]
        for body, b in backfill.items()
    ]
    first = next(iter(backfill.values()))
    return "\n".join(
        [
            f"One context of 3 `export()` calls per row, {first['contexts']:,} rows per round, "
            "outside any request (so a full queue makes the loop wait, never drop), to the "
            "local Mona server; each variant in a fresh process, median of "
            f"{first['rounds']} rounds, the ratio paired by round. *realistic*: per row, "
            "the loop reads the row from an SQLite table (`SELECT` over a cursor), decodes "
            "its 8 features from a JSON column, scores them with a small logistic model and "
            "derives a label and a mean: the target is measured on this body. *trivial*: "
            "the row is a dict the loop makes itself (almost no work per row), which shows "
            "our fixed cost per context. *with us* includes the final `flush()`: every "
            "context delivered.",
            "",
            table(
                [
                    "loop body",
                    "body µs per row",
                    "bare rows/s",
                    "with us, loop rows/s",
                    "with us, all-in rows/s",
                    "ratio",
                    "added µs per row",
                    "CPU µs per row bare / with us (all threads)",
                    "queue waits",
                    "all delivered",
                ],
                rows,
            ),
        ]
    )


def section_split(split: dict[str, Row]) -> str:
    """The same app (3 exports) with the exporter held back, then live, in one run."""
    rows = [
        [
            fw,
            f(s["held_request_us"]),
            f(s["held_exporter_cpu_us"]),
            f(s["held_added_cpu_us"]),
            f(s["live_request_us"]),
            f(s["live_flush_cpu_us"]),
            f(s["live_added_cpu_us"]),
            f(s["cpu_ratio"], 3),
        ]
        for fw, s in split.items()
    ]
    return "\n".join(
        [
            "*Held back*: the exporter sleeps through the loop (`benchmarks.hotpath`), so the "
            "request thread's cost and the exporter's own work (the flush afterwards) are "
            "apart. *Live*: the default options, the exporter's threads taking turns with "
            "the GIL while requests run. Added = the variant minus bare, µs per request; "
            "*CPU* counts every thread of the process over the loop and the flush after it; "
            "the ratio is total CPU per request live ÷ held back.",
            "",
            table(
                [
                    "framework",
                    "held: request added",
                    "held: exporter CPU",
                    "held: CPU added",
                    "live: request added",
                    "live: flush CPU",
                    "live: CPU added",
                    "CPU live ÷ held",
                ],
                rows,
            ),
        ]
    )


def section_instructions(rows: list[Row]) -> str:
    """Instructions per request (valgrind), per tool, and ours split by who pays."""
    if not rows:
        return "Not run (needs valgrind: `apt-get install valgrind`)."
    lines = [
        "CPU instructions per request, every thread of the process, counted by valgrind's "
        "callgrind (`python -m benchmarks.instructions`): the difference between a run of "
        "1,500 and one of 300 requests after the same warm-up, divided by 1,200, the "
        "garbage collector on as users run it, batches going out full (a long flush "
        "interval), the sinks in another process. Unlike µs it does not move with the "
        "machine's load; it counts work, not waiting.",
        "",
    ]
    tools = [t for t in TOOLS if any(t in row["tools"] for row in rows)]
    header = ["framework", *(LABELS.get(t, t) for t in tools)]
    body = []
    for row in rows:
        bare = row["tools"].get("bare")
        cells = [row["framework"]]
        for tool in tools:
            count = row["tools"].get(tool)
            if count is None:
                cells.append(DASH)
            elif tool == "bare" or not bare:
                cells.append(f"{count:,.0f}")
            else:
                cells.append(f"{count:,.0f} (+{count - bare:,.0f}, {count / bare:.2f}{TIMES})")
        body.append(cells)
    lines.append(table(header, body))
    split_rows = []
    for row in rows:
        parts = instruction_parts(row)
        if parts is not None:
            split_rows.append(
                [row["framework"], *(f"{parts[key]:+,.0f}" for key in (
                    "added", "added_collector_off", "request", "prepare", "rest", "collection",
                    "per_message",
                ))]
            )  # fmt: skip
            continue
        bare, ours = row["tools"].get("bare"), row["tools"].get("ours")
        split = row.get("split") or {}
        if not (bare and ours and "request" in split and "prepare" in split):
            continue
        # A run without the collector-off counts: the split as earlier runs gave it.
        request = split["request"] - bare
        prepare = split["prepare"] - split["request"]
        rest = ours - split["prepare"]
        split_rows.append(
            [row["framework"], f"+{ours - bare:,.0f}", DASH, f"+{request:,.0f}",
             f"+{prepare:,.0f}", f"{rest:+,.0f}", DASH, DASH]
        )  # fmt: skip
    if split_rows:
        lines += [
            "",
            "Ours, split by who pays (the split with the collector off): the request's own "
            "thread (contexts dropped in batches instead of queued), preparing each closed "
            "context as the batcher does (orjson encodes it there), and the rest (batching, "
            "the POSTs, the threads' turns); the collector's share is ours with it on minus "
            "off, less the same for the bare app; one message costs prepare and the rest:",
            "",
            table(
                ["framework", "added", "added, collector off", "request thread", "prepare",
                 "the rest", "collection", "per message"],
                split_rows,
            ),
        ]  # fmt: skip
    return "\n".join(lines)
