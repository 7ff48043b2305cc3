"""Contexts follow tasks and threads, never leak fields into each other, and never raise
for bad input unless asked to."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import pytest

import mona_middleware as mona

from ..servers import wait_for_child


def test_context_records_class_id_and_fields(memory):
    with mona.context("MODEL", context_id="abc") as ctx:
        assert mona.current_context() is ctx
        assert (ctx.context_class, ctx.context_id) == ("MODEL", "abc")
        mona.export({"score": 0.5})
        mona.export({"model": "v3"})
    assert mona.current_context() is None
    assert mona.flush(5)
    assert memory.contexts() == {("MODEL", "abc"): {"score": 0.5, "model": "v3"}}
    assert len(memory.messages) == 1  # coalesced


def test_thousand_concurrent_tasks_keep_their_own_fields(memory):
    async def request(n: int) -> None:
        async with mona.context("ASYNC_REQ", context_id=f"t{n}"):
            mona.export({"n": n})
            await asyncio.sleep(0)
            await asyncio.gather(child(n), child(n))  # child tasks inherit the context
            mona.export({"after": n})

    async def child(n: int) -> None:
        await asyncio.sleep(0)
        mona.export({"child": n})

    async def main() -> None:
        await asyncio.gather(*(request(n) for n in range(1000)))

    asyncio.run(main())
    assert mona.flush(10)
    contexts = memory.contexts()
    assert len(contexts) == 1000
    for n in range(1000):
        assert contexts[("ASYNC_REQ", f"t{n}")] == {"n": n, "child": n, "after": n}


def test_fifty_threads_keep_their_own_fields(memory):
    barrier = threading.Barrier(50, timeout=10)

    def request(n: int) -> None:
        with mona.context("THREAD_REQ", context_id=f"th{n}"):
            mona.export({"n": n})
            barrier.wait()  # all 50 contexts are open at once
            mona.export({"again": n})

    threads = [threading.Thread(target=request, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert mona.flush(10)
    contexts = memory.contexts()
    assert contexts == {("THREAD_REQ", f"th{n}"): {"n": n, "again": n} for n in range(50)}


def test_sub_context_id_joins_parent_id(memory):
    with mona.context("PIPELINE", context_id="run-7"):
        mona.export({"stage": "start"})
        with mona.sub_context("RANKER", sub_id="rank") as sub:
            assert sub.context_id == "run-7.rank"
            mona.export({"items": 3})
        with mona.sub_context("FILTER") as sub2:
            mona.export({"kept": 2})
        mona.export({"stage": "done"})
    assert mona.flush(5)
    contexts = memory.contexts()
    assert contexts[("PIPELINE", "run-7")] == {"stage": "done"}
    assert contexts[("RANKER", "run-7.rank")] == {"items": 3}
    assert sub2.context_id.startswith("run-7.") and contexts[("FILTER", sub2.context_id)] == {
        "kept": 2
    }


def test_export_after_close_from_a_lingering_thread_is_not_lost(memory):
    release = threading.Event()
    with mona.context("REQ", context_id="late-1"):
        mona.export({"a": 1})
        worker = mona.MonaThread(target=lambda: (release.wait(5), mona.export({"late": 2})))
        worker.start()
    release.set()
    worker.join(5)
    assert mona.flush(5)
    assert memory.contexts()[("REQ", "late-1")] == {"a": 1, "late": 2}


def test_export_outside_context_warns_once_counts_and_returns_false(memory, caplog):
    caplog.set_level(logging.WARNING, "mona_middleware")
    assert [mona.export({"a": i}) for i in range(5)] == [False] * 5
    assert caplog.text.count("outside any context") == 1
    assert mona.stats()["exports_outside_context"] == 5


def test_disable_all_turns_everything_into_a_no_op(monkeypatch):
    monkeypatch.setenv("MONA_DISABLE_ALL", "true")
    transport = mona.configure(transport="memory").transport
    assert transport == "memory"
    with mona.context("OFF") as ctx:
        assert mona.export({"a": 1}) is False
    assert ctx.disabled
    assert mona.export_batch([{"message": {"a": 1}, "contextClass": "OFF"}]) == 0
    assert mona.stats()["contexts"] == 0


def test_context_exit_on_exception_still_sends(memory):
    try:
        with mona.context("FAILS", context_id="f1"):
            mona.export({"before_error": True})
            raise KeyError("boom")
    except KeyError:
        pass
    assert mona.flush(5)
    assert memory.contexts() == {("FAILS", "f1"): {"before_error": True}}


class Opaque:
    pass


def test_bad_input_through_the_public_api_never_raises(memory, caplog):
    caplog.set_level(logging.ERROR, "mona_middleware")
    with mona.context("APP", context_id="bad-1", export_timestamp="not a time"):
        assert mona.export({"ok": 1, "nan": float("nan"), "obj": Opaque()}) is True
        assert mona.export(["not", "a", "dict"]) is False
        assert mona.export(None) is False
        assert mona.export({"x": 1}, action="APPEND") is False
        assert mona.export({"y": 2}, action="add") is True
    assert mona.context(123).disabled  # a bad class is logged, the app goes on
    assert mona.flush(5)
    assert memory.contexts()[("APP", "bad-1")] == {"ok": 1, "y": [2]}
    stats = mona.stats()
    assert stats["fields_dropped"] == 2
    assert stats["exports_refused"] == 4
    for name in ("'nan'", "'obj'", "APPEND", "dict", "context_class", "exportTimestamp"):
        assert name in caplog.text


def test_raise_export_exceptions_makes_bad_calls_raise():
    mona.configure(transport="memory", raise_export_exceptions=True)
    with mona.context("APP"):
        with pytest.raises(mona.MonaExportError, match="dict"):
            mona.export("text")
        with pytest.raises(mona.MonaExportError, match="action"):
            mona.export({"a": 1}, action="MERGE")
    with pytest.raises(mona.MonaExportError, match="context_class"):
        mona.context("")


def test_in_request_tells_the_exporter_which_contexts_a_web_request_is_waiting_on():
    """Read only with the queue full: a request's context, one opened inside its view
    (or nested deeper), and an excluded request's work wait briefly; the rest may wait."""
    from mona_middleware._api.context import MonaContext, passing_through
    from mona_middleware._web.recorder import WebRecorder

    mona.configure(transport="memory")
    outside = MonaContext("JOB")
    assert outside.in_request is False
    request = WebRecorder({"handle_sigterm": False}).start("GET", "/", lambda name: None)
    assert request.in_request is True
    with mona.context("INSIDE_VIEW") as inner:
        with mona.sub_context("PART") as part:
            assert part.in_request is True
        assert inner.in_request is True
    request.close()
    assert MonaContext("AFTER").in_request is False
    with passing_through():
        assert MonaContext("EXCLUDED_REQUEST_WORK").in_request is True


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_exporter_held_the_take_lock_can_still_take_and_add():
    """The batcher takes a lock in take_ops(); a fork at that instant copies it held."""
    from mona_middleware._api import context as context_module

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with context_module._TAKE_LOCK:  # as the batcher's thread inside take_ops()
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        pid = os.fork()
        if pid == 0:  # the child: nobody here will ever release the parent's lock
            try:
                ctx = context_module.MonaContext("FORKED")
                ctx.export({"n": 1}, action="ADD")  # takes the lock
                ops = ctx.take_ops()  # takes it again
                os._exit(0 if len(ops) == 1 else 1)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(2)
        status = wait_for_child(pid, timeout=10)  # fails the test if it deadlocked
    finally:
        release.set()
        holder.join(5)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_host_state_says_whether_a_context_is_a_live_web_request():
    """A task's state (Celery's TaskState) is no web request: its contexts, and those
    opened inside it, wait for room; one opened in a task run inside a request (an eager
    task in a view) is the request's and does not."""
    from mona_middleware._api.context import MonaContext
    from mona_middleware._web.recorder import ConnectionState, RequestState, WebRecorder

    class TaskLike:  # what a host declares: Celery's TaskState does the same
        live_request = False

    class Undeclared:  # says nothing: counted as a request, never stalled on a guess
        pass

    mona.configure(transport="memory")
    assert RequestState.live_request is True and ConnectionState.live_request is True
    task = MonaContext("TASK")
    task.request = TaskLike()
    assert task.in_request is False
    with task, mona.context("ROW") as row:
        assert row.in_request is False
    unknown = MonaContext("HOST")
    unknown.request = Undeclared()
    assert unknown.in_request is True
    request = WebRecorder({"handle_sigterm": False}).start("GET", "/", lambda name: None)
    with task, mona.context("ROW") as row:  # an eager task inside the view
        assert row.in_request is True
    request.close()


def test_a_task_state_is_not_a_web_request():
    pytest.importorskip("celery")
    from mona_middleware.celery import TaskState

    assert TaskState(continued=False).live_request is False


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_key_whose_repr_raises_costs_its_field_not_the_context(memory, caplog):
    key = _Unprintable()
    with mona.context("KEYS", context_id="k-1"):
        assert mona.export({key: 1, "kept": 2, "nan": float("nan")}) is True
    assert mona.flush(5)
    assert memory.contexts() == {("KEYS", "k-1"): {"kept": 2}}
    assert mona.stats()["fields_dropped"] == 2
    assert any("repr() raised RuntimeError" in r.getMessage() for r in caplog.records)


def test_an_id_that_is_no_text_is_refused_and_the_block_still_runs(memory):
    ran = []
    with mona.context("IDS", context_id=_Unprintable()) as ctx:
        ran.append(mona.export({"a": 1}))
    with mona.context("IDS", context_id=42):  # str() of it: an id like any other
        mona.export({"b": 2})
    with mona.context("IDS", context_id="p"), mona.sub_context("PART", sub_id=_Unprintable()):
        ran.append(mona.export({"c": 3}))
    assert ran == [False, False] and ctx.disabled
    assert "MonaContext(<" in repr(mona.context(_Unprintable()))  # never raises either
    assert mona.flush(5) and memory.contexts() == {("IDS", "42"): {"b": 2}}
    assert mona.stats()["exports_refused"] >= 2
