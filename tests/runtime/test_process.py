"""The process's exporter: replaced by ``configure()``, renewed in a forked child, flushed
at exit, and the file transport announced when there are no credentials."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import mona_middleware as mona

from ..conftest import rest_options
from ..helpers import export_contexts


def test_configure_replaces_a_running_exporter_without_losing_its_data(memory, caplog):
    caplog.set_level(logging.WARNING)
    with mona.context("OLD", context_id="1"):
        mona.export({"a": 1})
    second = mona.transports.InMemoryTransport()
    mona.configure(transport=second)
    assert memory.contexts() == {("OLD", "1"): {"a": 1}}  # flushed by configure()
    with mona.context("NEW", context_id="2"):
        mona.export({"b": 2})
    assert mona.flush(5)
    assert second.contexts() == {("NEW", "2"): {"b": 2}}


def run_python(code: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


def test_contexts_closed_on_a_loop_before_the_exporter_exists_arrive_or_are_counted():
    """On an event loop the exporter is built on a thread; what closes meanwhile waits in
    ``pending`` (as deep as the queue), then goes to it. Each id arrives or is counted."""
    import asyncio
    import threading

    from mona_middleware._runtime import process

    transport = mona.transports.InMemoryTransport()
    mona.configure(transport=transport, queue_size=8, flush_interval=0.05)
    assert process.current_exporter() is None  # built at first use
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # the builder waits for it: a build that takes its time
        with process.STATE.lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert holding.wait(10)

    async def close_contexts() -> tuple[bool, int, dict]:
        for n in range(20):
            with mona.context("ON_LOOP", context_id=f"id-{n}"):
                mona.export({"n": n})
        # Still no exporter: 8 wait for it, 12 found no room and were counted.
        return process.current_exporter() is None, len(process.STATE.pending), mona.stats()

    try:
        unbuilt, waiting, stats = asyncio.run(close_contexts())
    finally:
        release.set()
        holder.join(10)
    assert (unbuilt, waiting, stats["queued"], stats["dropped"]) == (
        True, 8, 8, {"queue full": 12}
    )  # fmt: skip
    assert mona.flush(5)
    delivered = {key[1] for key in transport.contexts()}
    assert delivered == {f"id-{n}" for n in range(8)}
    assert mona.stats()["dropped"] == {"queue full": 12}  # folded into the exporter's


def test_what_enqueue_could_not_take_is_counted_never_lost_silently(memory, monkeypatch):
    from mona_middleware._runtime import process

    exporter = process.exporter()

    def broken(item: object) -> bool:  # fails once the item is queued (a bug of ours)
        raise RuntimeError("cannot start")

    monkeypatch.setattr(exporter.admission, "not_open", broken)
    with mona.context("LOST", context_id="1"):
        mona.export({"a": 1, "b": 2})
    assert mona.stats()["dropped"] == {"could not be queued (RuntimeError)": 1}
    assert exporter.admission.depth() == 0  # taken back: counted once, never also sent


def test_the_exporter_is_never_built_on_a_running_loop(monkeypatch):
    """The middleware's set-up and the first close happen on the loop; the exporter, its
    transport and its spool are made on another thread."""
    import asyncio
    import threading

    from mona_middleware._runtime import process
    from mona_middleware.asgi import MonaASGIMiddleware

    built_on = []
    original = process._new_exporter

    def noting(cfg):
        built_on.append(threading.current_thread())
        return original(cfg)

    monkeypatch.setattr(process, "_new_exporter", noting)
    transport = mona.transports.InMemoryTransport()
    mona.configure(transport=transport)

    async def on_the_loop() -> None:
        async def app(scope, receive, send): ...

        MonaASGIMiddleware(app, handle_sigterm=False)  # as Starlette builds it, lazily
        with mona.context("FIRST", context_id="1"):
            mona.export({"a": 1})

    asyncio.run(on_the_loop())
    assert mona.flush(5)
    assert transport.contexts() == {("FIRST", "1"): {"a": 1}}
    assert len(built_on) == 1 and built_on[0] is not threading.current_thread()


def test_counting_a_refusal_builds_no_exporter_and_stats_show_the_count(memory, monkeypatch):
    """A counter lives without the exporter: no transport, spool, thread or exit hook
    for a refused call; the count waits for the exporter and ``stats()`` shows it."""
    import asyncio
    import threading

    from mona_middleware._export import exporter as exporter_module
    from mona_middleware._runtime import process

    built: list[str] = []
    create_transport, spool_for = process.create_transport, exporter_module.spool_for
    monkeypatch.setattr(
        process, "create_transport", lambda cfg: built.append("transport") or create_transport(cfg)
    )
    monkeypatch.setattr(
        exporter_module, "spool_for", lambda *a: built.append("spool") or spool_for(*a)
    )
    monkeypatch.setattr(process.STATE, "hooks_installed", False)
    threads = set(threading.enumerate())

    async def refuse_on_the_loop() -> None:
        with mona.context(""):  # refused: an empty context_class
            pass

    with mona.context(""):
        pass
    asyncio.run(refuse_on_the_loop())
    assert process.current_exporter() is None
    assert built == [] and set(threading.enumerate()) <= threads
    assert process.STATE.hooks_installed is False
    assert mona.stats()["exports_refused"] == 2  # builds it now, with the early counts
    assert built == ["transport", "spool"]
    assert mona.stats()["exports_refused"] == 2  # folded once


def test_a_count_after_shutdown_shows_in_stats_beside_the_stopped_ledger(memory):
    from mona_middleware._runtime import process

    export_contexts(2, cls="DONE")
    assert mona.shutdown(5)
    with mona.context(""):
        pass
    stats = mona.stats()
    assert process.current_exporter() is None
    assert (stats["contexts"], stats["exports_refused"], stats["state"]) == (2, 1, "stopped")


def test_counts_racing_the_exporters_build_are_not_lost(memory):
    """The two interleavings of a count with the build, made to happen: a count whose
    thread held the early ledger as the exporter took it over, and one that read "no
    exporter" just before it was published and so made a new early ledger."""
    from mona_middleware._runtime import process

    in_hand = process._early()  # a counting thread has the early ledger ...
    built = process.exporter()  # ... the exporter is built and adopts it ...
    in_hand.add("exports_refused")  # ... then the count lands in it
    process._early().add("exports_refused")  # missed the build: a ledger of its own
    assert mona.stats()["exports_refused"] == 2
    assert mona.stats()["exports_refused"] == 2  # adopted once
    assert process.current_exporter() is built


def test_every_count_made_while_threads_race_the_build_is_in_stats(memory):
    """A ledger of counts: threads count while the exporter is built under them (five
    rounds, each from no exporter); every count shows once in ``stats()``."""
    import threading

    from mona_middleware._runtime import process

    for _ in range(5):
        process.detach()  # no exporter, no early counts: the next use starts afresh
        # (the previous round's exporter is shut down already)
        mona.configure(transport=memory)
        start = threading.Barrier(5)

        def counting(start: threading.Barrier = start) -> None:
            start.wait(10)
            for _ in range(2_000):
                process.count("exports_refused")

        threads = [threading.Thread(target=counting) for _ in range(4)]
        for thread in threads:
            thread.start()
        start.wait(10)
        process.exporter()  # built while they count
        for thread in threads:
            thread.join(30)
        assert mona.stats()["exports_refused"] == 8_000
        assert mona.shutdown(5)
