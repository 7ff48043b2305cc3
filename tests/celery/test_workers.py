"""Real ``celery worker`` prefork processes recycling each child after one task
(``--max-tasks-per-child=1``): billiard children leave with ``os._exit``, so only the
``worker_process_shutdown`` flush can deliver their contexts. Exact counts at the real
local Mona server. The broker is Celery's filesystem transport (no server needed, so
these always run) and, where Debian's ``redis-server`` is installed, a real Redis.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("celery")
flask = pytest.importorskip("flask")

import mona_middleware as mona  # noqa: E402
from mona_middleware.flask import MonaFlask  # noqa: E402

from ..conftest import rest_options  # noqa: E402
from ..servers import BIN, AppServer, free_port, mona_env  # noqa: E402
from .worker_app import make_app  # noqa: E402

pytestmark = pytest.mark.timeout(180)


REDIS = shutil.which("redis-server")


@pytest.fixture(params=["filesystem", "redis"])
def broker(request, tmp_path):
    """(folder, url): the filesystem transport's folder, or a real Redis of our own."""
    folder = tmp_path / "broker"
    if request.param == "filesystem":
        yield folder, None
        return
    if REDIS is None:
        pytest.skip("no redis-server (apt-get install redis-server); the filesystem run covers")
    pytest.importorskip("redis")
    port = free_port()
    argv = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)
        yield folder, f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def start_worker(server, folder, *options: str, url: str | None = None, **env: str) -> AppServer:
    argv = [
        str(BIN / "celery") if (BIN / "celery").exists() else sys.executable,
        *(() if (BIN / "celery").exists() else ("-m", "celery")),
        "-A",
        "tests.celery.worker_app",
        "worker",
        *(options or ("--pool=prefork", "--concurrency=2", "--max-tasks-per-child=1")),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=WARNING",
    ]
    if url:
        env["CELERY_TEST_BROKER_URL"] = url
    return AppServer(argv, 0, mona_env(server, CELERY_TEST_BROKER=str(folder), **env))


def flask_app(producer, mona_server) -> flask.Flask:
    """A web app in this process whose request queues a task on the worker's broker."""
    app = flask.Flask("checkout")
    MonaFlask(app, context_class="CHECKOUT", handle_sigterm=False, **rest_options(mona_server))

    @app.post("/orders/<int:n>")
    def order(n):
        mona.export({"order": n})
        producer.send_task("work.follow_up", args=(n,))
        return {"queued": n}

    return app


def stop(worker: AppServer) -> None:
    code = worker.stop(timeout=60)  # SIGTERM: Celery's warm shutdown
    assert code == 0, worker.output


def test_prefork_children_deliver_every_task_and_children_know_their_parent(mona_server, broker):
    folder, url = broker
    producer = make_app(str(folder), url)
    web = flask_app(producer, mona_server).test_client()
    with start_worker(mona_server, folder, url=url) as worker:
        for n in range(10):
            producer.send_task("work.score", args=(n,))
        assert web.post("/orders/7").json == {"queued": 7}
        assert mona.flush(10)
        arrived = mona_server.wait_for_messages(12, timeout=120)
        stop(worker)
    assert arrived, (len(mona_server.messages()), worker.output)
    contexts = mona_server.contexts()
    assert len(contexts) == 12, contexts  # nothing lost, nothing doubled
    scored = {key: f for key, f in contexts.items() if key[0] == "SCORED"}
    assert sorted(f["n"] for f in scored.values()) == list(range(10))
    for fields in scored.values():
        assert fields["task_name"] == "work.score" and fields["state"] == "SUCCESS"
        assert fields["retries"] == 0 and fields["duration_ms"] >= 0 and fields["task_id"]
    ((request_key, request),) = [(k, f) for k, f in contexts.items() if k[0] == "CHECKOUT"]
    assert request["order"] == 7 and request["http_status_code"] == 200
    (follow_up,) = [f for k, f in contexts.items() if k[0] == "work.follow_up"]
    assert follow_up["followed_up"] == 7 and follow_up["parent_context_id"] == request_key[1]


def test_continue_context_makes_a_request_and_its_task_one_context(mona_server, tmp_path):
    producer = make_app(str(tmp_path / "broker"))
    web = flask_app(producer, mona_server).test_client()
    env = {"MONA_MIDDLEWARE_CONTINUE_CONTEXT": "true"}
    with start_worker(mona_server, tmp_path / "broker", **env) as worker:
        for n in range(3):
            assert web.post(f"/orders/{n}").status_code == 200
        assert mona.flush(10)
        arrived = mona_server.wait_for_messages(6, timeout=120)
        stop(worker)
    assert arrived, (len(mona_server.messages()), worker.output)
    contexts = mona_server.contexts()
    assert len(contexts) == 3 and {key[0] for key in contexts} == {"CHECKOUT"}, contexts
    for fields in contexts.values():
        assert fields["followed_up"] == fields["order"]  # the task's export, same context
        assert fields["http_status_code"] == 200 and fields["duration_ms"] >= 0
        assert fields["task_name"] == "work.follow_up" and fields["task_state"] == "SUCCESS"
        assert "parent_context_id" not in fields


def test_a_threads_pool_worker_flushes_at_its_shutdown(mona_server, tmp_path):
    """Tasks run in the worker's own process: ``worker_shutdown`` flushes them."""
    producer = make_app(str(tmp_path / "broker"))
    done = tmp_path / "done"
    done.mkdir()
    options = ("--pool=threads", "-c", "2")
    with start_worker(
        mona_server, tmp_path / "broker", *options, CELERY_TEST_DONE=str(done)
    ) as worker:
        for n in range(4):
            producer.send_task("work.score", args=(n,))
        producer.send_task("work.fail", args=(9,))
        # Nothing is sent before the shutdown (a 30 s flush interval): once every task has
        # run its body, stop the worker (a warm shutdown lets running tasks finish).
        for _ in range(1200):
            if len(list(done.iterdir())) == 5:
                break
            time.sleep(0.1)
        stop(worker)
    assert mona_server.wait_for_messages(5, timeout=10), worker.output
    contexts = mona_server.contexts()
    assert len(contexts) == 5, contexts
    assert sorted(f["n"] for k, f in contexts.items() if k[0] == "SCORED") == [0, 1, 2, 3]
    (failed,) = [f for k, f in contexts.items() if k[0] == "work.fail"]
    assert failed["exception_type"] == "ValueError" and failed["state"] == "FAILURE"
    assert failed["failing"] == 9


def test_a_backfill_inside_a_task_waits_for_room_and_delivers_every_context(mona_server, tmp_path):
    """A task is no web request: with a tiny queue and a slow backend its contexts wait
    for room (backpressure) instead of being dropped as "queue full" after 5 ms."""
    rows = 3000
    producer = make_app(str(tmp_path / "broker"))
    done = tmp_path / "done"
    done.mkdir()
    mona_server.hang(0.02)  # every POST answers 20 ms late: the exporter falls behind
    env = {
        "CELERY_TEST_DONE": str(done),
        "MONA_MIDDLEWARE_QUEUE_SIZE": "8",
        "MONA_MIDDLEWARE_BATCH_SIZE": "25",
        "MONA_MIDDLEWARE_SENDER_THREADS": "1",
        "MONA_MIDDLEWARE_FLUSH_INTERVAL": "0.05",
        "MONA_MIDDLEWARE_SPOOL": "false",  # nothing parked on disk: all of it arrives
        "MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT": "60",
    }
    with start_worker(mona_server, tmp_path / "broker", "--pool=solo", **env) as worker:
        producer.send_task("work.backfill", args=(rows,))
        for _ in range(1800):  # the task's body has run (a few seconds at the backend's pace)
            if any(done.iterdir()):
                break
            time.sleep(0.1)
        stop(worker)
    assert list(done.iterdir()), worker.output
    assert mona_server.wait_for_messages(rows + 1, timeout=30), (
        len(mona_server.messages()),
        worker.output,
    )
    contexts = mona_server.contexts()
    ids = sorted(int(key[1][4:]) for key in contexts if key[0] == "BACKFILL")
    assert ids == list(range(rows))  # every row, once
    (task,) = [f for key, f in contexts.items() if key[0] == "work.backfill"]
    assert task["state"] == "SUCCESS"
    assert "queue full" not in worker.output
