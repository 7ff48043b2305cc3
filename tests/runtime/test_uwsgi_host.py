"""uWSGI: the flags to advise, and a real uWSGI master + 2 workers with default flags
whose exporter was first used in the master delivers every request's context."""

from __future__ import annotations

import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from mona_middleware._cli.check import check
from mona_middleware._runtime import uwsgi_host

from ..servers import AppServer, free_port, mona_env

UWSGI = shutil.which("uwsgi") or str(Path(sys.executable).parent / "uwsgi")
HAVE_UWSGI = Path(UWSGI).exists()

APP = """
    import os
    import mona_middleware as mona
    from mona_middleware.wsgi import MonaWSGIMiddleware

    # The exporter is first used here, in uWSGI's master, before the workers are forked.
    with mona.context("MASTER", context_id="import"):
        mona.export({"pid": os.getpid()})

    def view(environ, start_response):
        mona.export({"pid": os.getpid()})
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]

    application = MonaWSGIMiddleware(view, context_class="REQ", context_id_header="x-id")
"""


def _wait_ready(server: AppServer, timeout: float = 60) -> None:
    """Until a worker answers (a loaded machine may take over a second for the first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.process.communicate()[0]
        try:
            requests.get(server.url + "/warm-up", timeout=10)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise TimeoutError("uWSGI did not answer")


def test_advice_names_what_is_missing_and_nothing_once_it_is_set():
    bare = uwsgi_host.advice({"master": True, "processes": b"2"})
    assert [line.split()[0] for line in bare] == ["enable-threads", "py-call-osafterfork"]
    assert uwsgi_host.advice({}, has_threads=True)[0].startswith("py-call-osafterfork")
    assert uwsgi_host.advice({"enable-threads": True, "lazy-apps": b"true"}) == []
    assert uwsgi_host.advice({b"enable-threads": b"1", "py-call-osafterfork": True}) == []
    assert len(uwsgi_host.advice({"enable-threads": b"false", "lazy-apps": b"0"})) == 2


def test_outside_uwsgi_nothing_is_installed():
    assert uwsgi_host.running_module() is None
    assert uwsgi_host.install_atexit(lambda: None) is False


@pytest.mark.skipif(not HAVE_UWSGI, reason="uWSGI is not installed (pip install uwsgi)")
def test_check_advises_the_uwsgi_flags_unless_the_environment_sets_them():
    warnings = check({"MONA_MIDDLEWARE_TRANSPORT": "memory"}).warnings
    assert any("uWSGI" in w and "py-call-osafterfork" in w for w in warnings), warnings
    env = {
        "MONA_MIDDLEWARE_TRANSPORT": "memory",
        "UWSGI_ENABLE_THREADS": "1",
        "UWSGI_LAZY_APPS": "true",
    }
    assert not any("uWSGI" in w for w in check(env).warnings)


@pytest.mark.timeout(120)
@pytest.mark.skipif(not HAVE_UWSGI, reason="uWSGI is not installed (pip install uwsgi)")
def test_uwsgi_with_default_flags_delivers_every_request_context(mona_server, tmp_path):
    (tmp_path / "uwsgi_app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    argv = [
        UWSGI,
        "--http-socket", f"127.0.0.1:{port}",
        "--master", "--processes", "2",
        "--wsgi-file", str(tmp_path / "uwsgi_app.py"),
        "--chdir", str(tmp_path),
    ]  # fmt: skip
    with AppServer(argv, port, mona_env(mona_server)) as server:
        _wait_ready(server)
        for n in range(6):
            answer = requests.get(f"{server.url}/r{n}", headers={"x-id": f"r{n}"}, timeout=10)
            assert answer.status_code == 200
        server.stop(signal.SIGINT)  # uWSGI's shutdown: workers leave through their atexit
    messages = mona_server.messages()
    ids = sorted(m["contextId"] for m in messages if m["contextId"].startswith("r"))
    assert ids == [f"r{n}" for n in range(6)], server.output[-3000:]  # each exactly once
    classes = [message["arcClass"] for message in messages]
    assert classes.count("REQ") == 7  # and the warm-up request's
    # the master sends on its own thread (no exporter threads before the fork); never
    # re-sent by a worker from the master's queue
    assert classes.count("MASTER") <= 1
    assert "running under uWSGI without" in server.output  # the log names the flags
