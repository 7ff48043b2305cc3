"""In-process cost per request: one framework, one tool, one child process per round.

The app is driven through its WSGI/ASGI callable directly, with a minimal environ or
scope like a server builds (no test client, which would add its own overhead), the
body iterated and closed as a server does. Each request is timed with
``perf_counter_ns``; then the tool's queue is flushed, timed too, so "all-in" is
``(timed loop + final flush) / requests``: whatever a tool defers to background threads
is either paid during the loop (it shares the GIL and the 2 cores) or in the flush.

    python -m benchmarks.inprocess --framework flask --tool ours --requests 10000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import time
from collections.abc import Callable
from typing import Any

from .apps import PATH_TEMPLATE, BenchApp, build
from .common import FRAMEWORKS, TOOLS, emit, percentile, sink_endpoints
from .sinks import SinkClient
from .tools import make_tool

WSGI_ENVIRON = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_ACCEPT": "*/*",
    "HTTP_USER_AGENT": "bench",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}

Runner = Callable[[int, int, list[int] | None], int]  # (first id, count, timings) -> non-200s


def wsgi_runner(app: Any) -> Runner:
    """Serve ``count`` requests the way a WSGI server does; returns how many were not 200."""
    status: list[str] = []

    def start_response(line: str, headers: list, exc_info: Any = None) -> Callable:
        status.append(line)
        return lambda data: None

    def run(first: int, count: int, timings: list[int] | None) -> int:
        clock = time.perf_counter_ns
        errors = 0
        errors_stream = io.StringIO()
        for n in range(first, first + count):
            environ = dict(WSGI_ENVIRON)
            environ["PATH_INFO"] = PATH_TEMPLATE.format(n % 1000 + 1)
            environ["wsgi.input"] = io.BytesIO(b"")
            environ["wsgi.errors"] = errors_stream
            started = clock()
            body = app(environ, start_response)
            try:
                for _chunk in body:
                    pass
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            if timings is not None:
                timings.append(clock() - started)
            if not status.pop().startswith("200"):
                errors += 1
        return errors

    return run


def asgi_runner(app: Any) -> Runner:
    """Serve ``count`` requests on one event loop, as one uvicorn connection would."""
    loop = asyncio.new_event_loop()

    async def serve(first: int, count: int, timings: list[int] | None) -> int:
        clock = time.perf_counter_ns
        errors = 0
        for n in range(first, first + count):
            path = PATH_TEMPLATE.format(n % 1000 + 1)
            scope = {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")],
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
                "state": {},
            }
            received = False
            status = 0

            async def receive() -> dict[str, Any]:
                nonlocal received
                if received:
                    return {"type": "http.disconnect"}
                received = True
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]

            started = clock()
            await app(scope, receive, send)
            if timings is not None:
                timings.append(clock() - started)
            if status != 200:
                errors += 1
        return errors

    def run(first: int, count: int, timings: list[int] | None) -> int:
        return loop.run_until_complete(serve(first, count, timings))

    return run


def measure(bench: BenchApp, requests: int, warmup: int, sink: SinkClient) -> dict[str, Any]:
    tool = bench.tool
    run = wsgi_runner(bench.app) if bench.kind == "wsgi" else asgi_runner(bench.app)
    errors = run(0, warmup, None)
    warm_flushed = tool.flush(30)  # the timed part starts with an empty queue
    gc.collect()
    timings: list[int] = []
    cpu_started, started = time.process_time(), time.perf_counter()
    errors += run(warmup, requests, timings)
    loop_done = time.perf_counter()
    flushed = tool.flush(30)
    done, cpu_done = time.perf_counter(), time.process_time()
    stats = sink.settled(quiet=0.1, limit=2.0) if tool.unit else None
    timings.sort()
    served = warmup + requests
    return {
        "framework": bench.framework,
        "tool": tool.name,
        "requests": requests,
        "warmup": warmup,
        "non_200": errors,
        "mean_us": sum(timings) / len(timings) / 1000,
        "p50_us": percentile(timings, 0.50) / 1000,
        "p99_us": percentile(timings, 0.99) / 1000,
        "max_us": timings[-1] / 1000,
        "loop_us": (loop_done - started) / requests * 1e6,
        "flush_ms": (done - loop_done) * 1000,
        "allin_us": (done - started) / requests * 1e6,
        "cpu_us": (cpu_done - cpu_started) / requests * 1e6,
        "flushed": bool(flushed and warm_flushed),
        "unit": tool.unit,
        "expected": tool.expected(served),
        "received": None if stats is None else tool.received(stats),
        "tool_stats": tool.dropped(),
        "sink": stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=FRAMEWORKS, required=True)
    parser.add_argument("--tool", choices=TOOLS, required=True)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    endpoints = sink_endpoints()
    sink = SinkClient(endpoints)
    sink.reset()
    bench = build(args.framework, make_tool(args.tool, endpoints))
    emit(measure(bench, args.requests, args.warmup, sink))


if __name__ == "__main__":
    main()
