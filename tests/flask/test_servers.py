"""Flask under real servers: N requests, SIGTERM, and exactly N contexts reached Mona."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
import requests

pytest.importorskip("flask")

from ..servers import ROOT, gunicorn, mona_env, python_script

N = 40


EXPECTED_ROUTES = {"/predict": 25, "/items/<int:item_id>": 10, "/stream": 3, "/fail": 2}


def drive(url: str) -> None:
    with requests.Session() as session:
        for n in range(25):
            response = session.post(
                f"{url}/predict", json={"items": [n + 1, 2], "segment": f"s{n}"}, timeout=10
            )
            assert response.status_code == 200
        for n in range(10):
            assert session.get(f"{url}/items/{n}", timeout=10).json() == {"id": n}
        for _ in range(3):
            assert session.get(f"{url}/stream", timeout=10).text == "row 0\nrow 1\nrow 2\n"
        for _ in range(2):
            assert session.get(f"{url}/fail", timeout=10).status_code == 500
        assert session.get(f"{url}/health", timeout=10).text == "ok"  # excluded


def check_contexts(mona_server) -> None:
    contexts = mona_server.contexts()
    assert len(contexts) == N
    assert {key[0] for key in contexts} == {"RECOMMENDATIONS"}
    assert Counter(f["http_route"] for f in contexts.values()) == EXPECTED_ROUTES
    predictions = [f for f in contexts.values() if f["http_route"] == "/predict"]
    assert sorted(f["user_segment"] for f in predictions) == sorted(f"s{n}" for n in range(25))
    assert all(
        f["model_version"] == "2026.11-b" and f["item_count"] == 2 and f["http_status_code"] == 200
        for f in predictions
    )
    assert all(f["rows_streamed"] == 3 for f in contexts.values() if f["http_route"] == "/stream")
    failed = [f for f in contexts.values() if f["http_route"] == "/fail"]
    assert all(
        f["http_status_code"] == 500 and f["exception_type"] == "RuntimeError" for f in failed
    )


@pytest.mark.parametrize("preload", [False, True], ids=["workers", "preload"])
def test_gunicorn_sync_workers_flush_everything_on_sigterm(mona_server, preload):
    args = ["-c", str(ROOT / "example_apps" / "gunicorn.conf.py")] + (
        ["--preload"] if preload else []
    )
    with gunicorn("example_apps.flask_app:app", mona_env(mona_server), *args, workers=2) as app:
        app.wait_ready("/health")
        drive(app.url)
        assert mona_server.messages() == []  # flush interval is 30 s: only shutdown sends
        assert app.stop(signal.SIGTERM) == 0, app.output
    check_contexts(mona_server)


def test_plain_python_app_stopped_by_sigterm_flushes(mona_server):
    with python_script(ROOT / "example_apps" / "flask_app.py", mona_env(mona_server)) as app:
        app.wait_ready("/health")
        drive(app.url)
        code = app.stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, app.output
    check_contexts(mona_server)
