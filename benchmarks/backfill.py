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
import sys
import time

from .common import child_env, emit, run_child, sink_endpoints
from .sinks import SinkProcess


def peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rows(n: int):
    """The "table" being backfilled: a little work per row, as real code would do."""
    for row in range(n):
        yield {"row": row, "score": (row % 100) / 100, "model": f"v{row % 3}"}


def measure(variant: str, contexts: int, queue_size: int) -> dict:
    """In the child: run the loop once; ``ours`` also flushes and reports delivery."""
    if variant == "bare":
        kept = 0
        started = time.perf_counter()
        for record in rows(contexts):
            fields = {"row": record["row"]}
            fields2 = {"score": record["score"]}
            fields3 = {"model": record["model"]}
            kept += len(fields) + len(fields2) + len(fields3)
        loop_s = time.perf_counter() - started
        return {"variant": variant, "loop_s": loop_s, "all_in_s": loop_s, "peak_mb": peak_mb()}

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
    started = time.perf_counter()
    if variant == "batch":  # the same rows as explicit messages, in one call
        queued = mona.export_batch(
            {"message": record, "contextClass": "BACKFILL", "contextId": f"row-{record['row']}"}
            for record in rows(contexts)
        )
        assert queued == contexts, queued
    else:
        for record in rows(contexts):
            with mona.context("BACKFILL", context_id=f"row-{record['row']}"):
                mona.export({"row": record["row"]})
                mona.export({"score": record["score"]})
                mona.export({"model": record["model"]})
    loop_s = time.perf_counter() - started
    flushed = mona.flush(600)
    all_in_s = time.perf_counter() - started
    stats = mona.stats()
    return {
        "variant": variant,
        "loop_s": loop_s,
        "all_in_s": all_in_s,
        "flushed": flushed,
        "sent": stats["messages_sent"],
        "dropped": stats["dropped"],
        "queue_waits": stats["queue_waits"],
        "peak_mb": peak_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=100_000)
    parser.add_argument("--queue-size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--export-batch", action="store_true", help="also send the rows with one export_batch"
    )
    parser.add_argument("--child", choices=("bare", "ours", "batch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        emit(measure(args.child, args.contexts, args.queue_size))
        return 0
    results = []
    with SinkProcess() as sink:
        for _ in range(args.rounds):
            for variant in ("bare", "ours", "batch")[: 3 if args.export_batch else 2]:
                sink.reset()
                result = run_child(
                    "benchmarks.backfill",
                    ["--child", variant, "--contexts", str(args.contexts),
                     "--queue-size", str(args.queue_size)],
                    child_env(sink.endpoints),
                    timeout=1200,
                )  # fmt: skip
                if variant != "bare":
                    result["received"] = sink.settled()["mona"]["messages"]
                result["contexts_per_s"] = round(args.contexts / result["loop_s"])
                result["all_in_contexts_per_s"] = round(args.contexts / result["all_in_s"])
                results.append(result)
                print(json.dumps(result), file=sys.stderr)
    for result in results:
        line = (
            f"{result['variant']:>5}: {result['contexts_per_s']:>9,} contexts/s in the loop, "
            f"{result['all_in_contexts_per_s']:>9,} with the final flush, "
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
