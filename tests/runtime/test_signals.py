"""SIGTERM: a plain process exits through ``atexit`` (which flushes); a server's own
handler is left alone, and its workers' shutdown spools what an outage kept."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from mona_middleware._export.spool import Spool
from mona_middleware._runtime.signals import EXIT_CODE_SIGTERM
from mona_middleware._util.stats import ExportStats

from ..servers import ROOT, gunicorn, mona_env


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_a_plain_process_leaves_through_atexit_on_sigterm():
    result = run_python(
        """
        import atexit, os, signal, threading, time
        from mona_middleware._runtime.signals import flush_on_sigterm

        atexit.register(lambda: print("atexit ran", flush=True))
        off_main = []
        thread = threading.Thread(target=lambda: off_main.append(flush_on_sigterm()))
        thread.start()
        thread.join()
        print("from a thread:", off_main[0], signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
        print("from main:", flush_on_sigterm(), flush_on_sigterm(), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        print("never reached")
        """
    )
    assert result.returncode == EXIT_CODE_SIGTERM == 128 + signal.SIGTERM, result.stderr
    assert result.stdout.splitlines() == [
        "from a thread: False True",  # only the main thread may install it
        "from main: True True",  # installed once; asking again changes nothing
        "atexit ran",
    ]


def test_a_sigterm_handler_someone_else_installed_is_left_alone():
    result = run_python(
        """
        import signal
        from mona_middleware._runtime.signals import flush_on_sigterm

        def servers_own(signum, frame):
            pass

        signal.signal(signal.SIGTERM, servers_own)
        print(flush_on_sigterm(), signal.getsignal(signal.SIGTERM) is servers_own)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


def test_sigterm_during_an_outage_spools_and_a_restart_delivers_exactly_once(mona_server, tmp_path):
    spool_dir = str(tmp_path / "spool")
    env = mona_env(
        mona_server,
        MONA_MIDDLEWARE_SPOOL_DIR=spool_dir,
        MONA_MIDDLEWARE_FLUSH_INTERVAL="0.2",
        MONA_MIDDLEWARE_RETRY_MAX_BACKOFF="0.5",
    )
    args = ["-c", str(ROOT / "example_apps" / "gunicorn.conf.py")]
    import requests

    with gunicorn("example_apps.flask_app:app", env, *args) as app:
        app.wait_ready("/health")
        mona_server.stop_listening()  # the outage starts after the app is up
        for n in range(30):
            assert requests.get(f"{app.url}/items/{n}", timeout=10).status_code == 200
        assert app.stop(signal.SIGTERM) == 0, app.output
    assert mona_server.messages() == []
    assert Spool(spool_dir, 1 << 30, ExportStats()).pending()[1] == 30
    mona_server.start_listening()
    with gunicorn("example_apps.flask_app:app", env, *args) as app:  # a new deploy, no traffic
        app.wait_ready("/health")
        assert mona_server.wait_for_messages(30, timeout=30), app.output
        assert app.stop(signal.SIGTERM) == 0
    item_ids = sorted(m["message"]["item_id"] for m in mona_server.messages())
    assert item_ids == list(range(30))
