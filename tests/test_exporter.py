"""The shared exporter: lazy threads, bounded queue, flush/shutdown deadlines, fork, atexit."""

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
from mona_middleware.transports import InMemoryTransport, SendResult, Transport

from .conftest import rest_options


def export_contexts(n: int, cls: str = "REQ", prefix: str = "r") -> None:
    for i in range(n):
        with mona.context(cls, context_id=f"{prefix}{i}"):
            mona.export({"i": i})


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


class ExplodingTransport(Transport):
    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, messages):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("bug in a transport")
        return SendResult.ok(len(messages))


def test_a_failing_transport_is_logged_retried_and_the_thread_survives(caplog):
    transport = ExplodingTransport()
    mona.configure(transport=transport, flush_interval=0.05, sender_threads=1)
    export_contexts(1)
    assert mona.flush(5)
    export_contexts(2, prefix="again")
    assert mona.flush(5)
    stats = mona.stats()
    assert stats["messages_sent"] == 3  # the failed send was retried
    assert stats["retries"] == 1 and stats["dropped"] == {}
    assert "bug in a transport" in caplog.text


def test_batches_go_out_by_interval_without_flush(memory):
    export_contexts(3)
    assert memory.wait_for_messages(3, timeout=5)  # flush_interval is 50 ms


def test_forked_child_gets_its_own_exporter_and_never_resends_the_parents_queue(mona_server):
    mona.configure(**rest_options(mona_server, flush_interval=600, batch_size=10_000))
    export_contexts(3, "PARENT", "p")  # queued, not yet sent: the batcher sleeps 600 s
    assert mona.stats()["queued"] == 3
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its own counts through the pipe, then leave at once
        code = 1
        try:
            export_contexts(2, "CHILD", "c")
            ok = mona.flush(5)
            os.write(write_end, json.dumps({"ok": ok, **mona.stats()}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = json.loads(pipe.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child["ok"] and child["contexts"] == 2 and child["messages_sent"] == 2
    assert child["queued"] == 0 and child["dropped"] == {}
    assert mona.flush(5)
    parent = mona.stats()
    assert parent["contexts"] == 3 and parent["messages_sent"] == 3
    messages = mona_server.messages()
    assert sorted(m["contextId"] for m in messages) == ["c0", "c1", "p0", "p1", "p2"]


def test_atexit_flushes_what_is_queued(mona_server):
    env = {
        "MONA_SDK_API_KEY": mona_server.api_key,
        "MONA_SDK_SECRET": mona_server.secret,
        "MONA_SDK_AUTH_API_TOKEN_URL": mona_server.token_url,
        "MONA_SDK_OVERRIDE_REST_API_URL": mona_server.export_url,
        "MONA_MIDDLEWARE_FLUSH_INTERVAL": "600",
    }
    result = run_python(
        """
        import mona_middleware as mona
        for i in range(20):
            with mona.context("BATCH_JOB", context_id=f"job-{i}"):
                mona.export({"rows": i})
        """,
        env,
    )
    assert result.returncode == 0, result.stderr
    assert len(mona_server.contexts()) == 20


def test_no_credentials_means_a_jsonl_file_announced_once(tmp_path, caplog):
    export_contexts(2)
    export_contexts(1, "OTHER")
    assert mona.flush(5)
    path = tmp_path / "mona-messages.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [m["contextId"] for m in lines] == ["r0", "r1", "r0"]
    assert caplog.text.count(str(path)) >= 1
    assert caplog.text.count("no Mona credentials") == 1


def test_jsonl_file_is_replayable_into_the_same_contexts(tmp_path, mona_server):
    mona.configure(
        transport="file", file_path=str(tmp_path / "out" / "m.jsonl"), flush_interval=0.05
    )
    with mona.context("A", context_id="1"):
        mona.export({"x": 1})
        mona.export({"n": 1}, action="ADD")
        mona.export({"n": 2}, action="ADD")
    assert mona.flush(5)
    messages = [
        json.loads(line) for line in (tmp_path / "out" / "m.jsonl").read_text().splitlines()
    ]
    memory = InMemoryTransport()
    memory.send(messages)
    assert memory.contexts() == {("A", "1"): {"x": 1, "n": [1, 2]}}


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
