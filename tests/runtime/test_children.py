"""multiprocessing children flush before they exit: ``Pool`` workers recycled by
``maxtasksperchild=1``, workers terminated by ``with Pool(...)``'s SIGTERM, and plain
``Process`` children, with the fork and the spawn start methods. Each run is a fresh
interpreter sending to the real local Mona server; the counts are exact."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys

import pytest

from mona_middleware._runtime import children

from ..servers import ROOT, mona_env

pytestmark = pytest.mark.timeout(150)

AVAILABLE = multiprocessing.get_all_start_methods()
METHODS = [m for m in ("fork", "spawn") if m in AVAILABLE]
# forkserver children are forked from a fresh server process: the spawn path, once more.
ALL_METHODS = [*METHODS, *(["forkserver"] if "forkserver" in AVAILABLE else [])]


def run(mona_server, method: str, scenario: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests.runtime.children_app", method, scenario],
        cwd=str(ROOT),
        # A loaded CI machine must not cut a child's exit flush short (it would spool).
        env=mona_env(mona_server, MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT="30"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_all_arrived(mona_server) -> None:
    assert mona_server.wait_for_messages(13, timeout=10)
    contexts = mona_server.contexts()
    assert len(contexts) == 13, sorted(contexts)  # nothing lost, nothing doubled
    assert sorted(f["n"] for k, f in contexts.items() if k[0] == "CHILD_TASK") == list(range(12))
    assert ("PARENT", "parent") in contexts


@pytest.mark.parametrize("method", ALL_METHODS)
def test_pool_workers_recycled_after_each_task_deliver_everything(mona_server, method):
    report = run(mona_server, method, "maxtasks")
    assert report["children"] == 12  # twelve workers, each gone after one task
    assert_all_arrived(mona_server)


@pytest.mark.parametrize("method", METHODS)
def test_workers_terminated_by_with_pool_flush_first(mona_server, method):
    run(mona_server, method, "terminate")
    assert_all_arrived(mona_server)


@pytest.mark.parametrize("method", METHODS)
def test_process_children_deliver_everything(mona_server, method):
    report = run(mona_server, method, "process")
    assert report["codes"] == [0] * 12
    assert_all_arrived(mona_server)


def test_a_process_that_is_no_child_arms_nothing():
    assert multiprocessing.parent_process() is None
    assert not children.armed()


def _report(queue) -> None:
    import signal

    queue.put((children.armed(), signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL))


@pytest.mark.skipif("fork" not in AVAILABLE, reason="no fork start method here")
def test_a_forked_child_of_a_process_with_an_exporter_is_armed(memory):
    import mona_middleware as mona

    with mona.context("PARENT"):
        mona.export({"n": 1})  # the exporter starts: children.install runs
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_report, args=(queue,))
    child.start()
    armed, sigterm_handled = queue.get(timeout=30)
    child.join(30)
    assert armed and sigterm_handled and child.exitcode == 0
    assert not children.armed()  # this process is no multiprocessing child
