"""``compat.mona_thread.MonaThread``: mona-client's thread, which continues the context
open where ``start()`` is called."""

from __future__ import annotations

import threading

import mona_middleware as mona
from mona_middleware.compat import mona_client as client
from mona_middleware.compat.mona_thread import MonaThread

from .test_mona_client import fresh  # noqa: F401  (the fixture)


def test_mona_thread_takes_the_context_at_start_not_at_creation(fresh):  # noqa: F811
    seen = []
    thread = MonaThread(target=lambda: seen.append(client.get_full_context_id()))
    assert client.MonaThread is MonaThread
    with client.new_mona_context("T", "at-start"):
        thread.start()
        thread.join(10)
    assert seen == ["at-start"]


def test_a_thread_outliving_its_context_still_exports_into_it(fresh):  # noqa: F811
    go = threading.Event()

    def late() -> None:
        go.wait(10)
        client.export({"late": 1})

    with client.new_mona_context("T", "t1"):
        client.export({"early": 1})
        thread = MonaThread(target=late)
        thread.start()
    go.set()
    thread.join(10)
    assert mona.flush(5)
    assert fresh.contexts() == {("T", "t1"): {"early": 1, "late": 1}}


def test_run_called_directly_runs_in_the_callers_context(fresh):  # noqa: F811  # noqa: F811
    seen = []
    with client.new_mona_context("T", "direct"):
        MonaThread(target=lambda: seen.append(client.get_full_context_id())).run()
    assert seen == ["direct"]
