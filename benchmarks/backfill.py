"""A backfill loop (mona-client's README example): one context of 3 exports per row.

The loop runs outside any web request, so with the queue full it waits for room
(backpressure) instead of dropping: every context must reach the local Mona server,
which runs in its own process (``benchmarks.sinks``). Each variant runs in a fresh
child process; the same loop without the middleware is the baseline.

    python -m benchmarks.backfill --contexts 100000 [--queue-size 10000] [--rounds 1]
    python -m benchmarks.backfill --contexts 500000 --export-batch   # + one export_batch call

Prints contexts/s of the loop (bare, ours, and ours including the final flush), what
the server received, ``stats()["dropped"]``, and the peak RSS of the loop's process.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time

from .common import child_env, emit, rotated, run_child, sink_endpoints
from .sinks import SinkClient, SinkProcess


def peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


WEIGHTS = (0.8, -1.2, 0.35, 2.0, -0.5, 0.1, 0.9, -0.05)


def table(n: int) -> sqlite3.Connection:
    """The table being backfilled: ``n`` stored predictions, features as a JSON column."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE TABLE predictions (id INTEGER PRIMARY KEY, features TEXT, model TEXT)"
    )
    connection.executemany(
        "INSERT INTO predictions VALUES (?, ?, ?)",
        (
            (
                row,
                json.dumps([((row * 7 + k * 13) % 100) / 50 - 1 for k in range(8)]),
                f"v{row % 3}",
            )
            for row in range(n)
        ),
    )
    return connection


def rows(connection: sqlite3.Connection):
    """Per row, what a real backfill does before it reports: read the row, decode its
    features, score them (a small logistic model) and derive a label and a summary."""
    for row_id, features_json, model in connection.execute(
        "SELECT id, features, model FROM predictions ORDER BY id"
    ):
        features = json.loads(features_json)
        z = sum(w * x for w, x in zip(WEIGHTS, features, strict=True))
        score = 1 / (1 + math.exp(-z))
        yield (
            {"row": row_id, "model": model},
            {"score": round(score, 4), "label": "high" if score > 0.5 else "low"},
            {"features_mean": round(sum(features) / len(features), 4), "n_features": len(features)},
        )


def trivial_rows(n: int):
    """The old loop body, kept to show the fixed cost per context: almost no work per row."""
    for row in range(n):
        yield {"row": row}, {"score": (row % 100) / 100}, {"model": f"v{row % 3}"}


def _source(body: str, contexts: int):
    """The loop's rows, built before the clock starts (the table) or made as it runs."""
    if body == "trivial":
        return lambda: trivial_rows(contexts)
    connection = table(contexts)
    return lambda: rows(connection)


def measure(variant: str, contexts: int, queue_size: int, body: str = "realistic") -> dict:
    """In the child: run the loop once; ``ours`` also flushes and reports delivery."""
    source = _source(body, contexts)
    if variant == "bare":
        kept = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for first, second, third in source():
            context_id = f"row-{first['row']}"
            kept += len(first) + len(second) + len(third) + len(context_id)
        loop_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
        return {"variant": variant, "body": body, "loop_s": loop_s, "all_in_s": loop_s,
                "cpu_s": cpu_s, "peak_mb": peak_mb()}  # fmt: skip

    import mona_middleware as mona

    mona_sink = sink_endpoints()["mona"]
    mona.configure(
        api_key=mona_sink["api_key"],
        secret=mona_sink["secret"],
        auth_api_token_url=mona_sink["token_url"],
        refresh_token_url=mona_sink["refresh_url"],
        rest_api_url=mona_sink["export_url"],
        queue_size=queue_size,
        spool=False,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    if variant == "batch":  # the same rows as explicit messages, in one call
        queued = mona.export_batch(
            {"message": {**first, **second, **third}, "contextClass": "BACKFILL",
             "contextId": f"row-{first['row']}"}
            for first, second, third in source()
        )  # fmt: skip
        assert queued == contexts, queued
    else:
        for first, second, third in source():
            with mona.context("BACKFILL", context_id=f"row-{first['row']}"):
                mona.export(first)
                mona.export(second)
                mona.export(third)
    loop_s = time.perf_counter() - started
    flushed = mona.flush(600)
    all_in_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started  # every thread of the process
    stats = mona.stats()
    return {
        "variant": variant,
        "body": body,
        "loop_s": loop_s,
        "all_in_s": all_in_s,
        "cpu_s": cpu_s,
        "flushed": flushed,
        "sent": stats["messages_sent"],
        "dropped": stats["dropped"],
        "queue_waits": stats["queue_waits"],
        "peak_mb": peak_mb(),
    }


def run_rounds(
    sink: SinkClient, contexts: int, queue_size: int, rounds: int, variants: tuple[str, ...],
    bodies: tuple[str, ...] = ("realistic",), first_round: int = 0,
) -> list[dict]:  # fmt: skip
    """Each (body, variant) once per round, each in a fresh child; what the sink received."""
    results = []
    for round_index in range(first_round, first_round + rounds):
        for body in bodies:
            for variant in rotated(list(variants), round_index):
                sink.reset()
                result = run_child(
                    "benchmarks.backfill",
                    ["--child", variant, "--contexts", str(contexts),
                     "--queue-size", str(queue_size), "--body", body],
                    child_env(sink.endpoints),
                    timeout=1200,
                )  # fmt: skip
                if variant != "bare":
                    result["received"] = sink.settled()["mona"]["messages"]
                result["contexts"] = contexts
                result["round"] = round_index
                result["contexts_per_s"] = round(contexts / result["loop_s"])
                result["all_in_contexts_per_s"] = round(contexts / result["all_in_s"])
                results.append(result)
                print(json.dumps(result), file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=100_000)
    parser.add_argument("--queue-size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--body", choices=("realistic", "trivial", "both"), default="realistic")
    parser.add_argument(
        "--export-batch", action="store_true", help="also send the rows with one export_batch"
    )
    parser.add_argument("--child", choices=("bare", "ours", "batch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        body = "realistic" if args.body == "both" else args.body
        emit(measure(args.child, args.contexts, args.queue_size, body))
        return 0
    variants = ("bare", "ours", "batch")[: 3 if args.export_batch else 2]
    bodies = ("realistic", "trivial") if args.body == "both" else (args.body,)
    with SinkProcess() as sink:
        results = run_rounds(sink, args.contexts, args.queue_size, args.rounds, variants, bodies)
    for result in results:
        line = (
            f"{result['body']:>9} {result['variant']:>5}: {result['contexts_per_s']:>9,} "
            f"contexts/s in the loop, {result['all_in_contexts_per_s']:>9,} with the final flush, "
            f"peak RSS {result['peak_mb']:.0f} MB"
        )
        if result["variant"] != "bare":
            line += (
                f"; received {result['received']:,} of {args.contexts:,}, "
                f"dropped {result['dropped'] or 0}, waits {result['queue_waits']:,}"
            )
        print(line)
    ours = [r for r in results if r["variant"] != "bare"]
    return 0 if all(r["received"] == args.contexts and not r["dropped"] for r in ours) else 1


if __name__ == "__main__":
    sys.exit(main())
