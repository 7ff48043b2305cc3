"""The machine and the software the numbers were measured on, for RESULTS.md."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from typing import Any

from .common import ROOT

PACKAGES = (
    "mona_middleware",
    "mona_sdk",
    "flask",
    "werkzeug",
    "django",
    "starlette",
    "gunicorn",
    "uvicorn",
    "requests",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-instrumentation-flask",
    "opentelemetry-instrumentation-django",
    "opentelemetry-instrumentation-starlette",
    "sentry-sdk",
    "orjson",
)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _run(*argv: str) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=str(ROOT))
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all processes), from /proc."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(n) for n in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(sink_cpu: float) -> float:
    """CPU seconds of this process, its finished children, and the sink process."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime + sink_cpu


def describe() -> dict[str, Any]:
    commit = _run("git", "rev-parse", "--short", "HEAD")
    dirty = _run("git", "status", "--porcelain", "--", "mona_middleware")
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "packages": {name: _version(name) for name in PACKAGES},
        "mona_middleware_commit": f"{commit}{' + local changes' if dirty else ''}",
        "wrk": _run("wrk", "--version"),
    }
