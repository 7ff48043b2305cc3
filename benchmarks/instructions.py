"""Instructions per request under valgrind: a cost that the machine's load cannot move.

On a shared VM the same commit measures a bare Flask request at 45 to 190 µs from one
minute to the next, so a few µs of difference drown. Counting the CPU instructions a
request costs (valgrind's callgrind, every thread of the process) gives the same figure
on every run: each (framework, tool) runs in a child under valgrind twice, with
``SMALL`` and ``LARGE`` requests after the same warm-up, and the difference divided by
the extra requests is the per-request count, start-up and the final flush's fixed part
cancelled out. The garbage collector is off during the timed requests (its full
collections would land in one run and not the other); the tools' threads, JSON and
POSTs to the local sink are all counted.

For ours it also splits the added instructions by who pays: the request's own thread
(closed contexts are dropped in batches instead of queued: ``--split request``),
``prepare()`` of each context (``--split prepare``), and the rest (batching, JSON,
the POSTs, the threads' turns).

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

SMALL, LARGE = 200, 600
WARMUP = 300
SPLITS = ("request", "prepare")


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None


def _drop_in_batches(prepare: bool) -> None:
    """Replace the exporter's queue: keep what a live queue keeps, then let it go.

    With ``prepare`` each context is also turned into wire messages, as the batcher would.
    """
    from mona_middleware._export.prepare import context_messages
    from mona_middleware._runtime import process

    kept: list[Any] = []

    config, stats = process.config(), process.exporter().stats

    def enqueue(item: Any) -> bool:
        if prepare:  # each one, so every counted request pays for its own
            context_messages(item, config, stats)
        kept.append(item)
        if len(kept) >= 500:
            kept.clear()
        return True

    process.enqueue = enqueue


def child(framework: str, tool: str, requests: int, split: str | None) -> None:
    """In the child, under valgrind: warm up, then ``requests`` with the GC off, flushed."""
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
    gc.disable()
    run(WARMUP, requests, None)
    bench.tool.flush(60)


def _count(endpoints: dict[str, Any], framework: str, tool: str, requests: int,
           split: str | None) -> int:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as directory:
        argv = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={directory}/out.%p",
            sys.executable, "-m", "benchmarks.instructions", "--child",
            framework, tool, str(requests), split or "-",
        ]  # fmt: skip
        done = subprocess.run(
            argv, env=child_env(endpoints), cwd=str(ROOT), capture_output=True, text=True,
            timeout=3600,
        )  # fmt: skip
    counts = re.findall(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not counts:
        raise RuntimeError(f"valgrind {framework}/{tool} failed:\n{done.stderr[-3000:]}")
    return int(counts[-1])


def per_request(endpoints: dict[str, Any], framework: str, tool: str,
                split: str | None = None) -> float:  # fmt: skip
    with ThreadPoolExecutor(2) as pool:  # the two sizes side by side: one per core
        small = pool.submit(_count, endpoints, framework, tool, SMALL, split)
        large = pool.submit(_count, endpoints, framework, tool, LARGE, split)
        return (large.result() - small.result()) / (LARGE - SMALL)


def measure(endpoints: dict[str, Any], frameworks: list[str], tools: list[str]) -> list[dict]:
    """One row per framework: instructions per request of each tool, and ours split."""
    rows = []
    for framework in frameworks:
        row: dict[str, Any] = {"framework": framework, "tools": {}, "split": {}}
        for tool in tools:
            log(f"instructions: {framework}, {tool}")
            row["tools"][tool] = per_request(endpoints, framework, tool)
        if "ours" in tools:
            for split in SPLITS:
                log(f"instructions: {framework}, ours, {split} only")
                row["split"][split] = per_request(endpoints, framework, "ours", split)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", default="flask,django,starlette")
    parser.add_argument("--tools", default="bare,ours,otel")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        framework, tool, requests, split = args.child
        child(framework, tool, int(requests), None if split == "-" else split)
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
        for split, count in row["split"].items():
            print(f"{row['framework']:>9}   ours up to {split}: {count:>10,.0f}")
    emit({"instructions": rows})


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
