"""Instructions per request under valgrind: a cost that the machine's load cannot move.

On a shared VM the same commit measures a bare Flask request at 45 to 190 µs from one
minute to the next, so a few µs of difference drown. Counting the CPU instructions a
request costs (valgrind's callgrind, every thread of the process) gives the same figure
on every run: each (framework, tool) runs in a child under valgrind twice, with
``SMALL`` and ``LARGE`` requests after the same warm-up, and the difference divided by
the extra requests is the per-request count, start-up and the final flush's fixed part
cancelled out. The tools' threads, JSON and POSTs to the local sink (another process)
are all counted; batches go out full, as in real use (a long flush interval: valgrind's
slowness would otherwise cut them small).

Each is counted with the garbage collector on, as users run it (the headline), and off:
the difference is what the objects a tool keeps alive cost the collector. ``LARGE`` is
big enough that collections of every generation fall in both runs alike.

For ours it also splits the added instructions (collector off) by who pays: the
request's own thread (closed contexts are dropped in batches instead of queued:
``--split request``), preparing each context as the batcher does (``--split prepare``),
and the rest (batching, the POSTs, the threads' turns).

    python -m benchmarks.instructions --frameworks flask,starlette
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .common import ROOT, child_env, emit, log, sink_endpoints
from .sinks import SinkProcess
from .summary import instruction_parts

SMALL, LARGE = 300, 1500
WARMUP = 300
SPLITS = ("request", "prepare")


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None


def _drop_in_batches(prepare: bool) -> None:
    """Replace the exporter's queue: keep what a live queue keeps, then let it go.

    With ``prepare`` each context is also turned into wire messages, as the batcher would.
    """
    from mona_middleware._runtime import process

    try:
        from mona_middleware._export.wire import context_wire
    except ImportError:  # a version before the batcher encoded (a before/after run)
        from mona_middleware._export.prepare import context_messages as context_wire

    kept: list[Any] = []

    config, stats = process.config(), process.exporter().stats

    def enqueue(item: Any) -> bool:
        if prepare:  # each one, as the batcher does, so every counted request pays its own
            context_wire(item, config, stats)
        kept.append(item)
        if len(kept) >= 500:
            kept.clear()
        return True

    process.enqueue = enqueue


def child(framework: str, tool: str, requests: int, split: str | None, collector: bool) -> None:
    """In the child, under valgrind: warm up, then ``requests`` (the garbage collector on
    or off), flushed."""
    from .apps import build
    from .inprocess import asgi_runner, wsgi_runner
    from .tools import make_tool

    bench = build(framework, make_tool(tool, sink_endpoints()))
    if split is not None:
        _drop_in_batches(prepare=split == "prepare")
    run = wsgi_runner(bench.app) if bench.kind == "wsgi" else asgi_runner(bench.app)
    run(0, WARMUP, None)
    bench.tool.flush(60)
    gc.collect()
    if not collector:
        gc.disable()
    run(WARMUP, requests, None)
    bench.tool.flush(60)


def _count(endpoints: dict[str, Any], framework: str, tool: str, requests: int,
           split: str | None, collector: bool) -> int:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as directory:
        argv = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={directory}/out.%p",
            sys.executable, "-m", "benchmarks.instructions", "--child",
            framework, tool, str(requests), split or "-", "on" if collector else "off",
        ]  # fmt: skip
        env = child_env(endpoints, MONA_MIDDLEWARE_FLUSH_INTERVAL="600")  # full batches
        done = subprocess.run(
            argv, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=3600
        )
    counts = re.findall(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not counts:
        raise RuntimeError(f"valgrind {framework}/{tool} failed:\n{done.stderr[-3000:]}")
    return int(counts[-1])


def per_request(endpoints: dict[str, Any], framework: str, tool: str,
                split: str | None = None, collector: bool = True) -> float:  # fmt: skip
    with ThreadPoolExecutor(2) as pool:  # the two sizes side by side: one per core
        small = pool.submit(_count, endpoints, framework, tool, SMALL, split, collector)
        large = pool.submit(_count, endpoints, framework, tool, LARGE, split, collector)
        return (large.result() - small.result()) / (LARGE - SMALL)


def measure(endpoints: dict[str, Any], frameworks: list[str], tools: list[str]) -> list[dict]:
    """One row per framework: instructions per request of each tool with the garbage
    collector on (``tools``) and off (``collector_off``), and ours split (collector off)."""
    rows = []
    for framework in frameworks:
        row: dict[str, Any] = {
            "framework": framework, "tools": {}, "collector_off": {}, "split": {}
        }  # fmt: skip
        for tool in tools:
            log(f"instructions: {framework}, {tool}")
            row["tools"][tool] = per_request(endpoints, framework, tool)
            if tool in ("bare", "ours"):
                log(f"instructions: {framework}, {tool}, collector off")
                off = per_request(endpoints, framework, tool, collector=False)
                row["collector_off"][tool] = off
        if "ours" in tools:
            for split in SPLITS:
                log(f"instructions: {framework}, ours, {split} only")
                row["split"][split] = per_request(
                    endpoints, framework, "ours", split, collector=False
                )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", default="flask,django,starlette")
    parser.add_argument("--tools", default="bare,ours,otel")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        framework, tool, requests, split, collector = args.child
        child(framework, tool, int(requests), None if split == "-" else split, collector == "on")
        return
    if not have_valgrind():
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    with SinkProcess() as sink:
        rows = measure(sink.endpoints, args.frameworks.split(","), args.tools.split(","))
    for row in rows:
        bare = row["tools"].get("bare")
        for tool, count in row["tools"].items():
            added = "" if bare is None else f", added {count - bare:+,.0f}"
            print(f"{row['framework']:>9} {tool:>6}: {count:>10,.0f} per request{added}")
        for tool, count in row["collector_off"].items():
            print(f"{row['framework']:>9} {tool:>6}: {count:>10,.0f} with the collector off")
        for split, count in row["split"].items():
            print(f"{row['framework']:>9}   ours up to {split}: {count:>10,.0f}")
        split = instruction_parts(row)
        if split:
            shown = ", ".join(f"{name} {value:+,.0f}" for name, value in split.items())
            print(f"{row['framework']:>9}   {shown}")
    emit({"instructions": rows})


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
