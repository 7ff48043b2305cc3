"""Where our per-request cost goes: layer by layer, then function by function.

1. Layers, per framework: the same app bare, with our middleware and no exports, with
   the three exports, and for Flask also with the WSGI middleware alone (without
   ``MonaFlask``'s request hooks). The exporter is held back during the loop (no flush
   before 10,000 contexts or an hour) so the loop is the request thread's cost alone;
   the flush that follows is the background cost (prepare, JSON, POST) per request:
   its wall time includes the local sink's answer, its CPU time is ours alone.
2. ``cProfile`` of Flask with ``MonaFlask`` and three exports: our functions only.
3. The background pipeline per message, timed directly: ``prepare`` (coalesce, convert,
   context id, wire dict) and the JSON encoding of a 500-message batch.

    python -m benchmarks.hotpath --framework flask --requests 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

from .common import emit, rotated, sink_endpoints
from .inprocess import asgi_runner, wsgi_runner
from .tools import CONTEXT_CLASS, Ours, field_groups

HELD_BACK = {"batch_size": 10_000, "flush_interval": 3600.0, "queue_size": 1_000_000}


def _hold_back() -> dict[str, Any]:
    """Options that keep the exporter asleep until ``flush``: it wakes every
    ``exporter.WAKE_EVERY`` contexts otherwise, whatever the batch size."""
    from mona_middleware._export import exporter

    exporter.WAKE_EVERY = 10**9  # this process only: a measuring child
    return HELD_BACK


def _record(exports: bool) -> Callable[[int], None]:
    import mona_middleware as mona

    def record(item_id: int) -> None:
        groups = field_groups(item_id)
        if exports:
            for fields in groups:
                mona.export(fields)

    return record


def flask_variants(options: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    import flask

    from mona_middleware.flask import MonaFlask
    from mona_middleware.wsgi import MonaWSGIMiddleware

    def make(layer: str, exports: bool) -> Callable[[], Any]:
        def build() -> Any:
            app = flask.Flask("bench")
            record = _record(exports)

            @app.get("/items/<int:item_id>")
            def item(item_id: int) -> dict[str, Any]:
                record(item_id)
                return {"item_id": item_id, "score": 0.93}

            if layer == "wsgi":
                app.wsgi_app = MonaWSGIMiddleware(app.wsgi_app, **options)
            elif layer == "flask":
                MonaFlask(app, **options)
            return app

        return build

    return {
        "bare": make("", False),
        "WSGI middleware only": make("wsgi", False),
        "MonaFlask, no export": make("flask", False),
        "MonaFlask + 3 exports": make("flask", True),
    }


def starlette_variants(options: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mona_middleware.asgi import MonaASGIMiddleware

    def make(ours: bool, exports: bool) -> Callable[[], Any]:
        def build() -> Any:
            record = _record(exports)

            async def item(request: Any) -> JSONResponse:
                item_id = request.path_params["item_id"]
                record(item_id)
                return JSONResponse({"item_id": item_id, "score": 0.93})

            middleware = [Middleware(MonaASGIMiddleware, **options)] if ours else []
            return Starlette(routes=[Route("/items/{item_id:int}", item)], middleware=middleware)

        return build

    return {
        "bare": make(False, False),
        "MonaASGIMiddleware, no export": make(True, False),
        "MonaASGIMiddleware + 3 exports": make(True, True),
    }


def django_variants(options: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    from . import django_site

    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="benchmarks.django_site",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
        MONA=options,
    )
    django.setup()

    def make(ours: bool, exports: bool) -> Callable[[], Any]:
        def build() -> Any:
            django_site.RECORD = _record(exports)
            settings.MIDDLEWARE = ["mona_middleware.django.MonaMiddleware"] if ours else []
            return WSGIHandler()  # reads MIDDLEWARE now

        return build

    return {
        "bare": make(False, False),
        "MonaMiddleware, no export": make(True, False),
        "MonaMiddleware + 3 exports": make(True, True),
    }


VARIANTS = {"flask": flask_variants, "starlette": starlette_variants, "django": django_variants}


def layers(
    framework: str, requests: int, rounds: int, live: bool = False
) -> dict[str, dict[str, float]]:
    """Median request-thread µs and background µs per request, per variant.

    ``live``: the exporter runs as users run it (default options) instead of being held
    back, and only bare and the full variant are measured: *request µs* then includes
    the exporter's turns with the GIL, *background CPU* what is left for the flush, and
    *total CPU* (loop and flush, every thread) is what compares with the held-back run.
    """
    import mona_middleware as mona

    options = Ours(sink_endpoints()).options()
    held = {} if live else _hold_back()
    mona.configure(**{k: v for k, v in options.items() if k != "context_class"}, **held)
    web_options = {"context_class": CONTEXT_CLASS, "handle_sigterm": False}
    variants = VARIANTS[framework](web_options)
    if live:
        names = list(variants)
        variants = {names[0]: variants[names[0]], names[-1]: variants[names[-1]]}
    loops: dict[str, list[float]] = {name: [] for name in variants}
    flushes: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    total_cpu: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(rounds):
        for name in rotated(list(variants), round_index):
            app = variants[name]()
            run = asgi_runner(app) if framework == "starlette" else wsgi_runner(app)
            run(0, 300, None)
            mona.flush(30)
            gc.collect()
            started, cpu_started = time.perf_counter(), time.process_time()
            run(300, requests, None)
            looped, cpu_looped = time.perf_counter(), time.process_time()
            mona.flush(60)
            flushed, cpu_flushed = time.perf_counter(), time.process_time()
            loops[name].append((looped - started) / requests * 1e6)
            flushes[name].append((flushed - looped) / requests * 1e6)
            cpu[name].append((cpu_flushed - cpu_looped) / requests * 1e6)
            total_cpu[name].append((cpu_flushed - cpu_started) / requests * 1e6)
    mona.shutdown(5)
    return {
        name: {
            "request_us": statistics.median(loops[name]),
            "flush_us": statistics.median(flushes[name]),  # wall: includes the sink's answer
            "background_cpu_us": statistics.median(cpu[name]),  # our threads' CPU only
            "total_cpu_us": statistics.median(total_cpu[name]),  # loop + flush, all threads
        }
        for name in variants
    }


def profile_flask(requests: int) -> list[dict[str, Any]]:
    """cProfile of Flask + MonaFlask + 3 exports; our functions, per request."""
    import mona_middleware as mona

    options = Ours(sink_endpoints()).options()
    mona.configure(**{k: v for k, v in options.items() if k != "context_class"}, **_hold_back())
    app = flask_variants({"context_class": CONTEXT_CLASS, "handle_sigterm": False})[
        "MonaFlask + 3 exports"
    ]()
    run = wsgi_runner(app)
    run(0, 300, None)
    profiler = cProfile.Profile()
    profiler.enable()
    run(300, requests, None)
    profiler.disable()
    mona.flush(60)
    mona.shutdown(5)
    return _ours_only(pstats.Stats(profiler), requests)


def _ours_only(stats: pstats.Stats, per: int, limit: int = 14) -> list[dict[str, Any]]:
    rows = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _) in stats.stats.items():
        if "mona_middleware" not in filename:
            continue
        module = filename.split("mona_middleware/")[-1]
        rows.append(
            {
                "function": f"{module}:{line}({function})",
                "calls_per_request": calls / per,
                "own_us": tottime / per * 1e6,
                "cumulative_us": cumtime / per * 1e6,
            }
        )
    rows.sort(key=lambda row: row["own_us"], reverse=True)
    return rows[:limit]


def background(contexts: int = 20_000) -> dict[str, Any]:
    """The exporter thread's work per message, timed and profiled outside any thread."""
    from mona_middleware import MonaContext
    from mona_middleware._export.prepare import prepare
    from mona_middleware._util import jsonwire as _json
    from mona_middleware.config import MonaConfig

    request_fields = {
        "http_method": "GET",
        "http_route": "/items/<int:item_id>",
        "http_status_code": 200,
        "duration_ms": 0.123,
    }

    def closed_contexts() -> list[Any]:
        made = []
        for n in range(contexts):
            ctx = MonaContext(CONTEXT_CLASS)
            for fields in field_groups(n):
                ctx.export(fields)
            ctx.export(request_fields)
            ctx.closed = True
            made.append(ctx)
        return made

    config, counters = MonaConfig(), _NoStats()
    batch = closed_contexts()
    started = time.perf_counter()
    messages = [m for ctx in batch for m in prepare(ctx, config, counters)]
    prepare_us = (time.perf_counter() - started) / contexts * 1e6
    encode_us = {}
    for name, encode in _encoders().items():
        started = time.perf_counter()
        for first in range(0, len(messages), 500):
            encode({"userId": "bench", "messages": messages[first : first + 500]})
        encode_us[name] = (time.perf_counter() - started) / len(messages) * 1e6
    batch = closed_contexts()
    profiler = cProfile.Profile()
    profiler.enable()
    for ctx in batch:
        prepare(ctx, config, counters)
    profiler.disable()
    return {
        "prepare_us": prepare_us,
        "json_us": encode_us["ours"],  # what the exporter uses (orjson when installed)
        "json_us_by_encoder": encode_us,
        "encoder": _json.ENCODER,
        "message_bytes": len(json.dumps(messages[0], separators=(",", ":"))),
        "profile": _ours_only(pstats.Stats(profiler), contexts, limit=8),
    }


def _encoders() -> dict[str, Callable[[Any], bytes]]:
    from mona_middleware._util import jsonwire as _json

    def stdlib(body: Any) -> bytes:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")

    return {"ours": _json.dumps, "json": stdlib}


class _NoStats:
    """Stands in for the exporter's counters: prepare only adds to them on trouble."""

    def add(self, *args: Any) -> None:
        pass

    def drop(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--live", action="store_true", help="the exporter live, not held back")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "framework": args.framework,
        "live": args.live,
        "layers": layers(args.framework, args.requests, args.rounds, args.live),
    }
    if args.framework == "flask" and not args.live:
        result["profile"] = profile_flask(args.requests)
        result["background"] = background()
    emit(result)


if __name__ == "__main__":
    main()
