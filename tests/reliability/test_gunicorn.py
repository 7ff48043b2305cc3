"""A real gunicorn app against the Mona test server while the server fails in turns and
the workers are signalled: every context the app answered arrives exactly once, and the
workers' own counters account for every message.

The server (in this process) honours ``Idempotency-Key`` and fails in turns: 503s, 429
with Retry-After, answers slower than ``http_timeout`` (stored first, or stored after
the wait), connections refused then back on the same port, connections lost after the
batch was stored. Meanwhile the master gets HUP, TTIN, TTOU, one worker SIGTERM, then
the master SIGTERM. Workers share one spool; a last process resends what is left in it.
"""

from __future__ import annotations

import secrets
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("gunicorn")  # not in tox's framework-free core env

from ..mona_server import MonaTestServer
from ..servers import gunicorn
from .ledger import (
    Ledger,
    children_of,
    drain_spool,
    exporter_env,
    ids_with_prefix,
    read_processes,
    rotating_faults,
    server_figures,
    signal_quietly,
    spool_messages,
)
from .load import Load

pytestmark = pytest.mark.timeout(150)

CONF = Path(__file__).with_name("gunicorn_conf.py")
RUN_SECONDS = 12.0  # load and faults before the master is stopped


def conduct(master: int, started: float) -> list[str]:
    """Signal the master and its workers in turns while the load runs; what was sent."""
    done = []
    for at, what in ((1.5, "HUP"), (4.0, "TTIN"), (6.5, "TTOU"), (9.0, "TERM a worker")):
        time.sleep(max(started + at - time.monotonic(), 0))
        if what == "TERM a worker":
            workers = children_of(master)
            if workers and signal_quietly(workers[-1], signal.SIGTERM):
                done.append(what)
        elif signal_quietly(master, getattr(signal, f"SIG{what}")):
            done.append(what)
    time.sleep(max(started + RUN_SECONDS - time.monotonic(), 0))
    return done


def test_gunicorn_under_rotating_faults_and_signals_delivers_every_context_once(tmp_path):
    spool, stats = tmp_path / "spool", tmp_path / "stats"
    prefix = f"g{secrets.token_hex(3)}-"
    with MonaTestServer() as server:
        env = exporter_env(server, spool, stats)
        app = gunicorn(
            "tests.reliability.wsgi_app:application",
            env,
            "-c",
            str(CONF),
            "--log-level",
            "warning",
            workers=2,
        )
        load = Load(app.url, prefix)
        rotation = None
        try:
            app.wait_ready("/ready")
            rotation = server.rotate(rotating_faults(), duration=RUN_SECONDS + 30)
            load.start()
            signals = conduct(app.process.pid, time.monotonic())
            load.stop()
            code = app.stop(signal.SIGTERM, timeout=60)  # faults still in turns
        finally:
            load.stop()
            if rotation is not None:
                rotation.stop()
            app.kill()
        drained = drain_spool(server, spool, stats)
        assert server.wait_idle(10)  # a slow answer still storing would change the books
        counts = server.context_counts().items()
        stored = ids_with_prefix(((key[1], n) for key, n in counts), prefix)
        ledger = Ledger(
            answered=set(load.answered),
            stored=stored,
            processes=read_processes(stats),
            spool_left=spool_messages(spool),
            maybe=load.maybe,
            answering_pids=set(load.answered.values()),
            server=server_figures(server, rotation),
        )
        errors = server.errors
    print(f"signals: {signals}; drain: {drained.strip()}\n{ledger.report()}")
    assert code == 0, app.output[-3000:]
    assert signals == ["HUP", "TTIN", "TTOU", "TERM a worker"]
    assert errors == []
    assert len(ledger.answered) > 100  # the load ran while the faults did
    problems = ledger.problems()
    assert not problems, ledger.report()
