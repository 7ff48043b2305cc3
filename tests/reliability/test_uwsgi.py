"""A real uWSGI master with two workers (default flags: the app is loaded in the master
and the workers are forked without Python's at-fork hooks) under the rotating faults,
with a touch-reload halfway and SIGINT at the end: every context the app answered
arrives exactly once at the key-honouring server, and the workers' counters (written
from ``uwsgi.atexit``) account for every message."""

from __future__ import annotations

import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from ..mona_server import MonaTestServer
from ..servers import ROOT, AppServer, free_port
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
from .load import Load

UWSGI = shutil.which("uwsgi") or str(Path(sys.executable).parent / "uwsgi")
HAVE_UWSGI = Path(UWSGI).exists()

pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.skipif(not HAVE_UWSGI, reason="uWSGI is not installed (pip install uwsgi)"),
]

RUN_SECONDS = 12.0
RELOAD_AT = 5.0


def ready(url: str) -> bool:
    import requests

    try:
        return requests.get(url + "/ready", timeout=10).status_code == 200
    except requests.RequestException:
        return False


def test_uwsgi_master_and_two_workers_under_rotating_faults_deliver_every_context_once(
    tmp_path,
):
    spool, stats = tmp_path / "spool", tmp_path / "stats"
    reload_file = tmp_path / "reload"
    reload_file.touch()
    prefix = f"u{secrets.token_hex(3)}-"
    port = free_port()
    argv = [
        UWSGI,
        "--http-socket", f"127.0.0.1:{port}",
        "--master", "--processes", "2",
        "--module", "tests.reliability.wsgi_app:application",
        "--chdir", str(ROOT),
        "--touch-reload", str(reload_file),
        "--disable-logging",  # no line per request: the output pipe must not fill up
    ]  # fmt: skip
    with MonaTestServer() as server:
        app = AppServer(argv, port, exporter_env(server, spool, stats))
        load = Load(app.url, prefix)
        rotation = None
        try:
            assert wait_until(lambda: ready(app.url) or app.process.poll() is not None, 60)
            rotation = server.rotate(rotating_faults(), duration=RUN_SECONDS + 30)
            started = time.monotonic()
            load.start()
            time.sleep(RELOAD_AT)
            before = set(load.answered.values())
            reload_file.touch()  # uWSGI reloads gracefully: workers leave through atexit
            reloaded = wait_until(lambda: set(load.answered.values()) - before, 45)
            time.sleep(max(started + RUN_SECONDS - time.monotonic(), 0))
            load.stop()
            code = app.stop(signal.SIGINT, timeout=60)  # faults still in turns
        finally:
            load.stop()
            if rotation is not None:
                rotation.stop()
            app.kill()
        drained = drain_spool(server, spool, stats)
        assert server.wait_idle(10)  # a slow answer still storing would change the books
        counts = server.context_counts().items()
        ledger = Ledger(
            answered=set(load.answered),
            stored=ids_with_prefix(((key[1], n) for key, n in counts), prefix),
            processes=read_processes(stats),
            spool_left=spool_messages(spool),
            maybe=load.maybe,
            answering_pids=set(load.answered.values()),
            server=server_figures(server, rotation),
        )
        errors = server.errors
    pids = sorted(ledger.answering_pids)
    print(f"answering pids: {pids}; drain: {drained.strip()}\n{ledger.report()}")
    assert code == 0, app.output[-3000:]
    assert reloaded, app.output[-3000:]  # new workers answered after the reload
    assert errors == []
    assert len(ledger.answered) > 100
    problems = ledger.problems()
    assert not problems, ledger.report()
