"""What every scenario shares: paths, child processes, the sink's address, statistics.

A scenario's measuring side always runs in a child process started by ``run_child``;
the child prints one ``RESULT {json}`` line, which is all the parent reads.
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULT_PREFIX = "RESULT "
SINK_ENV = "BENCH_SINK"  # JSON of Sinks.endpoints(), how children find the sinks
# Variables the tools read by themselves: a stray one would change what is measured.
_TOOL_ENV_PREFIXES = ("MONA_", "AUTH_MODE", "OTEL_", "SENTRY_")

FRAMEWORKS = ("flask", "django", "starlette")
TOOLS = ("bare", "ours", "otel", "sentry", "mona_sdk")


def child_env(endpoints: Mapping[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a measuring child: this checkout importable, no tool variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_TOOL_ENV_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"
    if endpoints is not None:
        env[SINK_ENV] = json.dumps(endpoints)
    env.update(extra)
    return env


def sink_endpoints() -> dict[str, Any]:
    """In a child: the sinks the parent started (see ``sinks.Sinks.endpoints``)."""
    return json.loads(os.environ[SINK_ENV])


def run_child(
    module: str, args: Sequence[str], env: Mapping[str, str], timeout: float
) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON it printed after ``RESULT``."""
    argv = [sys.executable, "-m", module, *args]
    try:
        done = subprocess.run(
            argv, env=dict(env), cwd=str(ROOT), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{module} {' '.join(args)}: no result within {timeout:.0f} s") from exc
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(
        f"{module} {' '.join(args)} exited {done.returncode} without a result:\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    )


def emit(result: Mapping[str, Any]) -> None:
    """In a child: hand the result to the parent (the last stdout line it reads)."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb() -> float:
    """This process's resident set size in MB, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    rank = max(math.ceil(q * len(sorted_values)) - 1, 0)
    return sorted_values[min(rank, len(sorted_values) - 1)]


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def rotated(items: Sequence[Any], round_index: int, step: int = 1) -> list[Any]:
    """``items`` starting ``round_index * step`` places further on: each round another order."""
    if not items:
        return []
    shift = (round_index * step) % len(items)
    return [*items[shift:], *items[:shift]]


def log(message: str) -> None:
    """Progress for humans, on stderr so a child's stdout stays machine-readable."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
