"""A fork while another thread is inside ``import uwsgi``: the child must still export.

Found by the property test (a producer thread closing its first context while the main
thread forks; in a loop of such forks 17 of 150 children hung for good). Making an
exporter asks ``uwsgi_host.running_module()``, which outside uWSGI tries ``import uwsgi``
every time. While a thread is in that import it holds the module's import lock; a child
forked then inherits the lock held by a thread it does not have, and its own
``import uwsgi`` (its first context) waits forever. Here a thread holds that lock on
purpose, as importlib does during the import, so the race is certain.
"""

from __future__ import annotations

import os
import threading
from importlib import _bootstrap  # type: ignore[attr-defined]

import mona_middleware as mona

from ..conftest import rest_options
from ..servers import wait_for_child


def _hold_import_lock(name: str, inside: threading.Event, release: threading.Event) -> None:
    """Be a thread in the middle of ``import name`` (its module lock taken) until released."""
    with _bootstrap._ModuleLockManager(name):
        inside.set()
        release.wait(10)


def test_a_fork_while_another_thread_imports_uwsgi_leaves_the_child_able_to_export(mona_server):
    mona.configure(**rest_options(mona_server))
    inside, release = threading.Event(), threading.Event()
    holder = threading.Thread(
        target=_hold_import_lock, args=("uwsgi", inside, release), daemon=True
    )
    holder.start()
    try:
        assert inside.wait(5)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with mona.context("FORKED", context_id="child"):
                    mona.export({"n": 1})
                code = 0 if mona.shutdown(5) else 2
            finally:
                os._exit(code)
        status = wait_for_child(pid, timeout=10)
    finally:
        release.set()
        holder.join(5)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert mona_server.context_counts() == {("FORKED", "child"): 1}
