"""The benchmark app for real servers: ``gunicorn benchmarks.serve:app``, ``uvicorn ...``.

Which framework and tool come from ``BENCH_FRAMEWORK`` and ``BENCH_TOOL``, the sinks
from ``BENCH_SINK``; each gunicorn worker imports this module, so each sets its tool up
itself after the fork, as an app without ``--preload`` does. With ``BENCH_COUNT_DIR``
every request is counted (see ``counting``).
"""

from __future__ import annotations

import os
from typing import Any

from .apps import build
from .common import sink_endpoints
from .counting import COUNT_DIR_ENV, RequestCounter, counted
from .tools import make_tool


def _app() -> Any:
    bench = build(
        os.environ["BENCH_FRAMEWORK"], make_tool(os.environ["BENCH_TOOL"], sink_endpoints())
    )
    directory = os.environ.get(COUNT_DIR_ENV)
    if not directory:
        return bench.app
    return counted(bench.app, bench.kind, RequestCounter(directory))


app = _app()
