"""The shared exporter: lazy threads, bounded queue and memory, flush/shutdown deadlines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import mona_middleware as mona
from mona_middleware._runtime import process as _runtime

from ..conftest import rest_options
from ..helpers import export_contexts
from ..servers import free_port


def run_python(code: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_import_starts_nothing_and_threads_start_on_first_context():
    result = run_python(
        """
        import threading
        import mona_middleware as mona
        before = threading.active_count()
        mona.configure(transport="memory")
        configured = threading.active_count()
        with mona.context("X"):
            mona.export({"a": 1})
        print(before, configured, threading.active_count())
        """,
        {},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", str(1 + 1 + 2)]  # batcher + 2 senders


def test_flush_and_shutdown_return_in_time_when_the_server_hangs(mona_server):
    mona.configure(**rest_options(mona_server, http_timeout=30, shutdown_timeout=1))
    mona_server.hang(60)
    export_contexts(5)
    started = time.monotonic()
    assert mona.flush(0.5) is False
    flushed_in = time.monotonic() - started
    started = time.monotonic()
    assert mona.shutdown(1.0) is False
    shut_in = time.monotonic() - started
    assert flushed_in < 2 and shut_in < 2.5, (flushed_in, shut_in)  # bounds, not timings
    assert _runtime.current_exporter() is None  # the next export starts a fresh exporter


@pytest.mark.parametrize("spool", [True, False])
def test_what_a_hanging_server_kept_at_shutdown_is_spooled_or_counted(mona_server, spool):
    mona.configure(**rest_options(mona_server, http_timeout=30, spool=spool))
    exporter = _runtime.exporter()
    mona_server.hang(60)
    export_contexts(7)
    assert exporter.shutdown(0.5) is False
    stats = exporter.snapshot()
    if spool:
        assert stats["messages_spooled"] == 7 and stats["spool"]["messages"] == 7
        assert stats["dropped"] == {}
    else:
        assert stats["dropped"] == {"not sent before the shutdown timeout": 7}


def test_export_never_waits_for_a_hanging_backend_and_overflow_is_counted_exactly(mona_server):
    mona.configure(
        **rest_options(
            mona_server, queue_size=100, flush_interval=600, batch_size=10_000, http_timeout=30
        )
    )
    mona_server.hang(60)
    started = time.monotonic()
    export_contexts(150)  # the batch never fills: nothing is sent, the queue holds 100
    assert time.monotonic() - started < 10  # not one request waited for the 60 s hang
    stats = mona.stats()
    dropped = stats["dropped"].get("queue full", 0)
    # The queue holds 100; the batcher may have taken a few out first to prepare them
    # (they wait for a full batch): every context is waiting or counted, exactly.
    assert stats["in_flight"] == 0 and stats["queued"] >= 100
    assert dropped == 150 - stats["queued"] and set(stats["dropped"]) == {"queue full"}
    mona_server.set_mode("accept")
    assert mona.flush(10)
    assert mona.stats()["messages_sent"] == 150 - dropped
    assert len(mona_server.contexts()) == 150 - dropped


def test_batches_go_out_by_interval_without_flush(memory):
    export_contexts(3)
    assert memory.wait_for_messages(3, timeout=5)  # flush_interval is 50 ms


def test_flush_from_many_threads_at_once(memory):
    results = []

    def worker(n):
        export_contexts(20, prefix=f"t{n}-")
        results.append(mona.flush(10))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert results == [True] * 8
    assert len(memory.contexts()) == 160


@pytest.mark.parametrize("timeout", [0, 0.2])
def test_shutdown_twice_and_export_after_shutdown_are_safe(memory, timeout):
    export_contexts(1)
    exporter = _runtime.exporter()
    assert exporter.shutdown(5)
    assert exporter.shutdown(timeout)
    late = mona.MonaContext("LATE", "l1")
    late.export({"a": 1})
    assert exporter.enqueue(late) is False
    assert exporter.snapshot()["dropped"] == {"exporter shut down": 1}
    assert len(memory.messages) == 1


def test_memory_stays_bounded_after_100k_exports_to_a_dead_backend(tmp_path):
    """RSS in a fresh process: the queue is bounded, the rest is counted or on disk."""
    dead = f"http://127.0.0.1:{free_port()}"
    script = textwrap.dedent(
        f"""
        import json, resource
        import mona_middleware as mona
        from mona_middleware._runtime import process as _runtime

        def rss_mb():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024

        mona.configure(api_key="k", secret="s", auth_api_token_url="{dead}/token",
                       rest_api_url="{dead}/export", spool_dir={str(tmp_path)!r},
                       http_timeout=0.2, auth_retries=0, retry_max_backoff=0.05)
        with mona.context("WARM"):
            mona.export({{"a": 1}})
        before = rss_mb()
        for n in range(100_000):
            with mona.context("LOAD", context_id=str(n)):
                mona.export({{"n": n, "model": "v3", "score": 0.5}})
        after = rss_mb()
        exporter = _runtime.exporter()
        queued = exporter.snapshot()["queued"]
        mona.shutdown(10)
        stats = exporter.snapshot()
        print(json.dumps({{"before": before, "after": after, "queued": queued,
                          "dropped": stats["dropped"], "spooled": stats["messages_spooled"],
                          "sent": stats["messages_sent"]}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print("RSS MB before/after 100k exports to a dead backend:", figures)
    assert figures["after"] - figures["before"] < 80
    # queue_size contexts, plus the one batch (batch_size) the exporter's thread holds
    assert figures["queued"] <= 10_000 + 500
    # every one of the 100,001 messages is accounted for: on disk, or counted as dropped
    assert figures["sent"] + figures["spooled"] + sum(figures["dropped"].values()) == 100_001
