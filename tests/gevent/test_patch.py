"""``patch()`` under ``monkey.patch_all()`` in a fresh interpreter, and under gunicorn's
gevent worker: every export made in a spawned greenlet reaches the real local Mona server
in the context it was spawned from."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("gevent")

import requests

from ..servers import BIN, gunicorn, mona_env

CHILD = """
from gevent import monkey

monkey.patch_all()

import threading

import gevent
from gevent.pool import Pool

import mona_middleware as mona
import mona_middleware.gevent


def part(name, value):
    gevent.sleep(0.001)
    return mona.export({name: value})


with mona.context("GEVENT_JOB", context_id="unpatched"):
    mona.export({"where": "parent"})
    print("unpatched", gevent.spawn(part, "child", 0).get())

mona_middleware.gevent.patch()


def request(i):
    with mona.context("GEVENT_JOB", context_id=f"job{i}"):
        mona.export({"where": "parent"})

        def nested():
            gevent.spawn(part, "grandchild", i).join()
            return part("child", i)

        jobs = [
            gevent.spawn(nested),
            gevent.spawn_later(0.002, part, "later", i),
            Pool(2).spawn(part, "pooled", i),
        ]
        thread = threading.Thread(target=part, args=("thread", i))  # a greenlet here
        thread.start()
        gevent.joinall(jobs)
        thread.join()
        return all(job.value for job in jobs)


requests = [gevent.spawn(request, i) for i in range(5)]  # concurrent: they interleave
gevent.joinall(requests)
print("patched", [job.value for job in requests])
print("outside", gevent.spawn(mona.current_context).get())
mona_middleware.gevent.unpatch()
with mona.context("GEVENT_JOB", context_id="unpatched-again"):
    print("unpatched-again", gevent.spawn(part, "child", 0).get())
print("flushed", mona.flush(10))
"""


def test_spawned_greenlets_export_into_the_spawning_context(mona_server):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD)],
        env=mona_env(mona_server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "unpatched False",  # gevent alone: the greenlet starts in an empty context
        "patched [True, True, True, True, True]",
        "outside None",
        "unpatched-again False",
        "flushed True",
    ]
    contexts = mona_server.contexts()
    assert contexts.pop(("GEVENT_JOB", "unpatched")) == {"where": "parent"}
    assert contexts == {  # "unpatched-again" exported nothing it could: never sent
        ("GEVENT_JOB", f"job{i}"): {
            "where": "parent", "grandchild": i, "child": i, "later": i, "pooled": i, "thread": i,
        }
        for i in range(5)
    }  # fmt: skip


@pytest.mark.skipif(not (BIN / "gunicorn").exists(), reason="gunicorn is not installed")
def test_gunicorn_gevent_worker_delivers_every_context(mona_server):
    server = gunicorn(
        "tests.gevent.gevent_app:app", mona_env(mona_server), "-k", "gevent", workers=2
    )
    with server:
        server.wait_ready("/health")
        with ThreadPoolExecutor(8) as pool:  # concurrent: greenlets of requests interleave
            answers = list(
                pool.map(lambda n: requests.get(f"{server.url}/fanout/{n}", timeout=10), range(12))
            )
        assert [a.text for a in answers] == ["True,True,True"] * 12
        assert mona_server.messages() == []  # held until the workers exit
        assert server.stop() == 0, server.output
    assert "mona_middleware: could not" not in server.output, server.output
    contexts = mona_server.contexts()
    assert {cls for cls, _ in contexts} == {"GEVENT_API"}
    found = sorted(contexts.values(), key=lambda f: f["n"])
    for fields in found:
        assert fields.pop("duration_ms") > 0
    assert found == [
        {"n": n, "part_0": n * 10, "part_1": n * 10 + 1, "part_2": n * 10 + 2,
         "http_method": "GET", "http_route": "/fanout/<int:n>", "http_status_code": 200}
        for n in range(12)
    ]  # fmt: skip
