"""A real Celery prefork worker (``-c 2``, children recycled with
``--max-tasks-per-child``, a warm shutdown) under the rotating faults: every task that
ran arrives exactly once at the key-honouring server, and the processes' counters
account for every message. Redis (Debian's ``redis-server``, on a port of our own) is
the broker when installed, else Celery's filesystem transport.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("celery")

from ..celery.worker_app import make_app
from ..mona_server import MonaTestServer
from ..servers import BIN, AppServer, free_port
from .ledger import (
    Ledger,
    drain_spool,
    exporter_env,
    ids_with_prefix,
    read_processes,
    rotating_faults,
    server_figures,
    spool_messages,
    wait_until,
)

pytestmark = pytest.mark.timeout(150)

REDIS = shutil.which("redis-server")
TASKS = 150
SEND_SECONDS = 8.0  # tasks are sent over this long, while the faults turn


def redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def broker(tmp_path):
    """(folder, url): a Redis of our own when installed, else the filesystem transport."""
    folder = tmp_path / "broker"
    if REDIS is None:
        yield folder, None
        return
    pytest.importorskip("redis")
    port = free_port()
    argv = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: redis_ready(port) or server.poll() is not None, 20)
        assert server.poll() is None, "redis-server exited"
        yield folder, f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def celery_worker(env: dict[str, str]) -> AppServer:
    celery = [str(BIN / "celery")]
    if not (BIN / "celery").exists():
        celery = [sys.executable, "-m", "celery"]
    argv = [
        *celery,
        "-A",
        "tests.reliability.celery_app",
        "worker",
        "--pool=prefork",
        "--concurrency=2",
        "--max-tasks-per-child=10",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=WARNING",
    ]
    return AppServer(argv, 0, env)


def test_celery_prefork_under_rotating_faults_delivers_every_task_once(tmp_path, broker):
    folder, url = broker
    spool, stats, done = tmp_path / "spool", tmp_path / "stats", tmp_path / "done"
    done.mkdir()
    prefix = f"c{secrets.token_hex(3)}-"
    uids = [f"{prefix}{n}" for n in range(TASKS)]
    producer = make_app(str(folder), url)
    with MonaTestServer() as server:
        extra = {
            "CELERY_TEST_BROKER": str(folder),
            "RELIABILITY_DONE": str(done),
            # a recycled child holds its pool slot while it flushes: keep that short
            "MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT": "2",
        }
        if url:
            extra["CELERY_TEST_BROKER_URL"] = url
        worker = celery_worker(exporter_env(server, spool, stats, **extra))
        rotation = None
        try:
            rotation = server.rotate(rotating_faults(), duration=90)
            started = time.monotonic()
            for n, uid in enumerate(uids):
                time.sleep(max(started + SEND_SECONDS * n / TASKS - time.monotonic(), 0))
                producer.send_task("reliable.work", args=(uid,), task_id=uid)
            phases = {"sent": round(time.monotonic() - started, 1)}
            ran = wait_until(lambda: len(list(done.iterdir())) >= TASKS, 90)
            phases["ran"] = round(time.monotonic() - started, 1)
            code = worker.stop(signal.SIGTERM, timeout=60)  # warm shutdown, faults still on
            phases["stopped"] = round(time.monotonic() - started, 1)
        finally:
            if rotation is not None:
                rotation.stop()
            worker.kill()
        drained = drain_spool(server, spool, stats)
        assert server.wait_idle(10)  # a slow answer still storing would change the books
        marks = {path.name: int(path.read_text()) for path in Path(done).iterdir()}
        ledger = Ledger(
            answered=set(marks),
            stored=ids_with_prefix(server.field_counts("uid").items(), prefix),
            processes=read_processes(stats),
            spool_left=spool_messages(spool),
            maybe=set(uids) - set(marks),
            answering_pids=set(marks.values()),
            server=server_figures(server, rotation),
        )
        errors = server.errors
    broker_name = "redis" if url else "filesystem"
    print(f"broker: {broker_name}; seconds: {phases}; drain: {drained.strip()}")
    print(ledger.report())
    assert code == 0, worker.output[-3000:]
    assert ran, (len(marks), worker.output[-3000:])
    assert errors == []
    problems = ledger.problems()
    assert not problems, ledger.report()
