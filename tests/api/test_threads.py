"""``MonaThread`` and ``wrap`` carry the current context into threads, which start empty."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import mona_middleware as mona


def test_plain_threads_start_empty_but_mona_thread_and_wrap_carry_the_context(memory):
    seen = {}
    with mona.context("PARENT", context_id="p1"):
        plain = threading.Thread(target=lambda: seen.setdefault("plain", mona.current_context()))
        carried = mona.MonaThread(target=lambda: mona.export({"from_thread": True}))
        for thread in (plain, carried):
            thread.start()
            thread.join(5)
        with ThreadPoolExecutor(4) as pool:
            work = mona.wrap(lambda i: mona.export({f"item{i}": i}))
            assert all(pool.map(work, range(8)))
    assert seen["plain"] is None
    assert mona.flush(5)
    fields = memory.contexts()[("PARENT", "p1")]
    assert fields == {"from_thread": True, **{f"item{i}": i for i in range(8)}}


def test_each_call_of_a_wrapped_function_runs_in_its_own_copy_of_the_context(memory):
    request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id")
    seen = []

    def work(n: int) -> bool:
        seen.append(request_id.get(None))
        request_id.set(f"changed by call {n}")  # in this call's copy only
        return mona.export({f"item{n}": n})

    with mona.context("PARENT", context_id="p2"):
        request_id.set("r-1")
        wrapped = mona.wrap(work)
        request_id.set("r-2")  # after wrap(): not what its calls see
        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(wrapped, range(8)))
        wrapped(8)  # in this thread too
    assert seen == ["r-1"] * 9
    assert request_id.get() == "r-2"
    assert mona.flush(5)
    assert memory.contexts()[("PARENT", "p2")] == {f"item{n}": n for n in range(9)}
    assert wrapped.__name__ == "work"
