"""A script the multiprocessing tests run in a fresh interpreter:
``python -m tests.runtime.children_app <start method> <scenario>``.

The parent exports one context first (so a forked child inherits a running exporter),
then runs 12 tasks in children, each opening a context, and prints the children's exit
codes as JSON. Exports leave only when a process flushes before it exits
(``mona_env`` sets a 30 s flush interval).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys

import mona_middleware as mona

TASKS = 12


def task(n: int) -> int:
    with mona.context("CHILD_TASK", context_id=f"t{n}"):
        mona.export({"n": n, "pid": os.getpid()})
    return os.getpid()


def main(method: str, scenario: str) -> None:
    with mona.context("PARENT", context_id="parent"):
        mona.export({"method": method, "scenario": scenario})
    ctx = multiprocessing.get_context(method)
    codes: list[int | None] = []
    if scenario == "maxtasks":  # each worker exits after one task (its os._exit path)
        with ctx.Pool(2, maxtasksperchild=1) as pool:
            pids = pool.map(task, range(TASKS), chunksize=1)
    elif scenario == "terminate":  # workers keep their contexts until the with's SIGTERM
        with ctx.Pool(2) as pool:
            pids = pool.map(task, range(TASKS), chunksize=1)
    elif scenario == "process":
        pids = []
        for first in range(0, TASKS, 4):
            children = [ctx.Process(target=task, args=(n,)) for n in range(first, first + 4)]
            for child in children:
                child.start()
            for child in children:
                child.join(60)
                codes.append(child.exitcode)
                pids.append(child.pid)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    print(json.dumps({"children": len(set(pids)), "codes": codes}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
