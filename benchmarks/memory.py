"""Memory with the backend down: RSS before and after 100,000 exports nobody receives.

The exporter points at a port where nothing listens (token and export URLs alike), so
every send fails and is retried with backoff. What it may hold is bounded by
``queue_size`` (10,000 contexts by default); the rest is counted as dropped, or, with
the spool on, written to disk. Each export is a request-like context with three
``export()`` calls. RSS comes from /proc/self/status (VmRSS; VmHWM is the peak).

    python -m benchmarks.memory --exports 100000 --spool off
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time

from .common import emit, free_port
from .tools import CONTEXT_CLASS, field_groups


def peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(exports: int, spool_dir: str | None) -> dict:
    import mona_middleware as mona

    from .common import rss_mb

    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    mona.configure(
        api_key="key",
        secret="secret",
        auth_api_token_url=down + "/token",
        refresh_token_url=down + "/token/refresh",
        rest_api_url=down + "/export",
        spool=spool_dir is not None,
        spool_dir=spool_dir,
        auth_retries=0,
        request_queue_wait=0,  # drop at once when full: 5 ms per drop would take minutes
    )
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    export, context = mona.export, mona.context
    for n in range(exports):
        with context(CONTEXT_CLASS) as ctx:
            # Request-like: with the queue full, a web request waits request_queue_wait
            # and then drops (counted). A plain loop would wait for room (backpressure,
            # issue 12), and with the backend down and no spool, room comes only as
            # retries give up: the run would crawl for many minutes. request_queue_wait
            # is 0 above, so it measures what is held, not the wait.
            ctx.request = True
            for fields in field_groups(n):
                export(fields)
    elapsed = time.perf_counter() - started
    after = rss_mb()
    gc.collect()
    after_gc = rss_mb()
    stats = mona.stats()
    shutdown_started = time.perf_counter()
    mona.shutdown(2)
    return {
        "exports": exports,
        "spool": spool_dir is not None,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "rss_after_gc_mb": after_gc,
        "rss_peak_mb": peak_mb(),
        "export_seconds": elapsed,
        "queued": stats.get("queued"),
        "in_flight": stats.get("in_flight"),
        "dropped": stats.get("dropped"),
        "spooled": stats.get("messages_spooled"),
        "shutdown_seconds": time.perf_counter() - shutdown_started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=int, default=100_000)
    parser.add_argument("--spool", choices=("off", "on"), default="off")
    args = parser.parse_args()
    if args.spool == "on":
        with tempfile.TemporaryDirectory(prefix="bench-spool-") as directory:
            emit(measure(args.exports, directory))
    else:
        emit(measure(args.exports, None))


if __name__ == "__main__":
    main()
