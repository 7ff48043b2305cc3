"""The one command: every scenario, in rounds, in rotating order, then RESULTS.md and the chart.

    python -m benchmarks               # full: 5 rounds (about 15 minutes on 2 cores)
    python -m benchmarks --quick       # 3 rounds, fewer requests (a few minutes)
    python -m benchmarks --smoke --out /tmp/bench   # 1 tiny round (CI keeps it working)

A round runs each in-process combination (framework x tool), each real-server
combination, the exporter throughput and the memory check once, each in its own child
process, starting one place further along the list than the round before, so slow
drifts of the machine (thermal, page cache, other tenants) spread over every tool.
The hot-path profile runs once at the end. Medians over rounds are reported; "added"
figures are paired: each round's tool minus the same round's bare app.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python benchmarks/run.py``: import the package instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks.backfill import run_rounds as run_backfill
from benchmarks.common import FRAMEWORKS, TOOLS, child_env, log, rotated, run_child
from benchmarks.environment import busy_cpu_seconds, describe, own_cpu_seconds
from benchmarks.instructions import have_valgrind
from benchmarks.instructions import measure as measure_instructions
from benchmarks.servers import SERVERS, have_wrk
from benchmarks.servers import measure as measure_server
from benchmarks.sinks import SinkClient, SinkProcess
from benchmarks.tools import available

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    """How much of everything one mode runs."""

    mode: str
    rounds: int
    requests: int  # per in-process child, every tool but mona_sdk
    mona_sdk_requests: int  # mona_sdk pays a round trip per request: fewer suffice
    warmup: int
    server_seconds: float
    server_warmup: float
    connections: int
    server_tools: tuple[str, ...]
    server_frameworks: tuple[str, ...]
    exporter_messages: int
    memory_exports: int
    hotpath_requests: int
    hotpath_rounds: int
    hotpath_frameworks: tuple[str, ...]
    backfill_contexts: int


PLANS = {
    "full": Plan("full", 5, 5000, 1000, 500, 5.0, 2.0, 8, TOOLS, ("flask", "starlette"),
                 100_000, 100_000, 4000, 5, FRAMEWORKS, 50_000),
    "quick": Plan("quick", 3, 2000, 400, 200, 3.0, 1.0, 8, TOOLS, ("flask", "starlette"),
                  50_000, 100_000, 2000, 3, FRAMEWORKS, 20_000),
    "smoke": Plan("smoke", 1, 200, 30, 20, 1.0, 0.0, 4, ("bare", "ours"), ("flask",),
                  2000, 2000, 100, 1, ("flask",), 2000),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mona_middleware benchmarks")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 rounds, fewer requests")
    mode.add_argument("--smoke", action="store_true", help="1 tiny round (CI)")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md etc. go")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to leave out: "
        "inprocess,servers,exporter,memory,backfill,instructions,profile",
    )
    args = parser.parse_args(argv)
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.rounds:
        plan = Plan(**{**asdict(plan), "rounds": args.rounds})
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    results = run(plan, skip)
    results["started"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results["elapsed_s"] = time.monotonic() - started
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")

    from benchmarks.report import write_report

    write_report(results, args.out)
    log(f"done in {results['elapsed_s'] / 60:.1f} min: {args.out / 'RESULTS.md'}")
    return 0


def run(plan: Plan, skip: set[str]) -> dict[str, Any]:
    tools = [tool for tool in TOOLS if available(tool)]
    missing = [tool for tool in TOOLS if tool not in tools]
    inprocess = [(fw, tool) for fw in FRAMEWORKS for tool in tools]
    server_tools = [tool for tool in plan.server_tools if tool in tools]
    servers = [(fw, tool) for fw in plan.server_frameworks for tool in server_tools]
    if not have_wrk() and plan.mode == "smoke":
        servers = []  # the Python fallback is too slow to be worth a smoke round
    results: dict[str, Any] = {
        "plan": asdict(plan),
        "environment": describe(),
        "missing_tools": missing,
        "load_generator": "wrk" if have_wrk() else "python",
        "inprocess": [],
        "servers": [],
        "exporter": [],
        "memory": [],
        "hotpath": [],
        "hotpath_live": [],  # the same layers with the exporter running as users run it
        "backfill": [],
        "instructions": [],  # per framework: valgrind's instruction counts per request
        "others_cpu": [],  # per round: CPU seconds other processes used, and the round's wall
    }
    with SinkProcess() as sink:
        for round_index in range(plan.rounds):
            log(f"round {round_index + 1}/{plan.rounds}")
            watch = _OtherProcesses(sink)
            if "inprocess" not in skip:
                for framework, tool in rotated(inprocess, round_index, step=4):
                    row = _inprocess(plan, sink, framework, tool)
                    results["inprocess"].append({**row, "round": round_index})
            if "servers" not in skip:
                for framework, tool in rotated(servers, round_index):
                    row = _server(plan, sink, framework, tool)
                    results["servers"].append({**row, "round": round_index})
            if "exporter" not in skip:
                row = _child(sink, "benchmarks.throughput", "--messages", plan.exporter_messages)
                results["exporter"].append({**row, "round": round_index})
            if "memory" not in skip:
                for spool in rotated(["off", "on"], round_index):
                    args = ("--exports", plan.memory_exports, "--spool", spool)
                    row = _child(sink, "benchmarks.memory", *args)
                    results["memory"].append({**row, "round": round_index})
            if "backfill" not in skip:
                results["backfill"] += run_backfill(
                    sink, plan.backfill_contexts, 10_000, 1, ("bare", "ours"),
                    ("realistic", "trivial"), first_round=round_index,
                )  # fmt: skip
            results["others_cpu"].append(watch.result())
            log(f"  other processes used {results['others_cpu'][-1]['cpu_s']:.1f} s CPU")
        if "instructions" not in skip and plan.mode != "smoke" and have_valgrind():
            # Deterministic: once, not per round (valgrind runs each child ~50x slower).
            wanted = [tool for tool in ("bare", "ours", "otel") if tool in tools]
            results["instructions"] = measure_instructions(sink.endpoints, list(FRAMEWORKS), wanted)
        if "profile" not in skip:
            for framework in plan.hotpath_frameworks:
                log(f"hot path: {framework}")
                args = ("--framework", framework, "--requests", plan.hotpath_requests)
                row = _child(sink, "benchmarks.hotpath", *args, "--rounds", plan.hotpath_rounds)
                results["hotpath"].append(row)
                log(f"hot path: {framework}, the exporter live")
                args = (*args, "--rounds", plan.hotpath_rounds, "--live")
                results["hotpath_live"].append(_child(sink, "benchmarks.hotpath", *args))
    return results


class _OtherProcesses:
    """How much CPU processes outside this benchmark took during a round (0 on a quiet box)."""

    def __init__(self, sink: SinkClient) -> None:
        self.sink = sink
        self.started = time.monotonic()
        self.busy = busy_cpu_seconds()
        self.own = own_cpu_seconds(sink.stats()["process_cpu_s"])

    def result(self) -> dict[str, float | None]:
        wall = time.monotonic() - self.started
        busy = busy_cpu_seconds()
        if busy is None or self.busy is None:
            return {"cpu_s": None, "wall_s": wall}
        own = own_cpu_seconds(self.sink.stats()["process_cpu_s"]) - self.own
        return {"cpu_s": max(busy - self.busy - own, 0.0), "wall_s": wall}


def _child(sink: SinkClient, module: str, *args: Any, timeout: float = 900) -> dict[str, Any]:
    return run_child(module, [str(a) for a in args], child_env(sink.endpoints), timeout)


def _inprocess(plan: Plan, sink: SinkClient, framework: str, tool: str) -> dict[str, Any]:
    requests = plan.mona_sdk_requests if tool == "mona_sdk" else plan.requests
    row = _child(
        sink,
        "benchmarks.inprocess",
        "--framework",
        framework,
        "--tool",
        tool,
        "--requests",
        requests,
        "--warmup",
        min(plan.warmup, requests),
    )
    log(
        f"  {framework:9s} {tool:8s} mean {row['mean_us']:8.1f} us  p99 {row['p99_us']:8.1f} us"
        f"  all-in {row['allin_us']:8.1f} us  received {row['received']}/{row['expected']}"
    )
    return row


def _server(plan: Plan, sink: SinkClient, framework: str, tool: str) -> dict[str, Any]:
    row = measure_server(
        framework,
        tool,
        sink,
        seconds=plan.server_seconds,
        warmup=plan.server_warmup,
        connections=plan.connections,
    )
    log(
        f"  {SERVERS[framework]:8s} {tool:8s} {row['rps']:8.0f} req/s  p50 {row['p50_us']:7.0f} us"
        f"  p99 {row['p99_us']:7.0f} us  received {row['received']} for {row['served']} served"
    )
    return row


if __name__ == "__main__":
    raise SystemExit(main())
