"""The example Django project under real servers, stopped by SIGTERM: every context arrives.

Exports only leave the app server at shutdown (``mona_env`` sets a 30 s flush interval),
so these prove that each server's shutdown path flushes what the requests recorded.
"""

from __future__ import annotations

import importlib.metadata
import signal

import pytest

pytest.importorskip("django")

import requests
from packaging.version import Version  # pytest's own dependency

from ..servers import ROOT, gunicorn, mona_env, python_script, uvicorn

pytestmark = pytest.mark.timeout(90)


MANAGE = ROOT / "example_apps" / "django_app" / "manage.py"


def uvicorn_exit_code_on_sigterm() -> int:
    """uvicorn >= 0.29 restores the SIGTERM handler it found (the middleware's, installed
    when asgi.py was imported) and re-raises the signal: 143. Older releases return
    normally, 0; either way ``atexit`` flushes."""
    if Version(importlib.metadata.version("uvicorn")) < Version("0.29"):
        return 0
    return 143


CHECKED = ("item_id", "item_count", "score", "rows_streamed", "exception_type")


def send_requests(url: str, count: int) -> list[tuple]:
    """``count`` requests across the example's views; the context each must become."""
    expected = []
    with requests.Session() as session:
        for n in range(count):
            kind = n % 5
            if kind in (0, 1):
                items = list(range(1, n + 2))
                response = session.post(f"{url}/predict", json={"items": items}, timeout=5)
                score = round(sum(items) / (len(items) * 100), 4)
                want = ("RECOMMENDATIONS", 200, "/predict", {"item_count": n + 1, "score": score})
            elif kind == 2:
                response = session.get(f"{url}/items/{n}", timeout=5)
                fields = {"item_id": n, "item_count": 1, "score": round(n / 100, 4)}
                want = ("ITEM_LOOKUP", 200, "/items/<int:item_id>", fields)
            elif kind == 3:
                response = session.get(f"{url}/stream", timeout=5)
                assert response.text == "row 0\nrow 1\nrow 2\n"
                want = ("RECOMMENDATIONS", 200, "/stream", {"rows_streamed": 3})
            else:
                response = session.get(f"{url}/fail", timeout=5)
                want = ("RECOMMENDATIONS", 500, "/fail", {"exception_type": "RuntimeError"})
            assert response.status_code == want[1]
            assert session.get(f"{url}/health", timeout=5).text == "ok"  # excluded
            expected.append((*want[:3], *(want[3].get(name) for name in CHECKED)))
    return expected


def assert_received(mona_server, expected: list[tuple]) -> None:
    assert mona_server.wait_for_messages(len(expected), timeout=10)
    received = mona_server.contexts()
    assert len(received) == len(expected)  # nothing lost, nothing doubled, no /health
    got = [
        (key[0], fields["http_status_code"], fields["http_route"], *map(fields.get, CHECKED))
        for key, fields in received.items()
    ]
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    for fields in received.values():
        assert fields["model_version"] == "2026.11-b" and fields["duration_ms"] > 0
        assert fields["http_method"] in ("GET", "POST")


@pytest.mark.parametrize("preload", [False, True], ids=["workers", "preload"])
def test_gunicorn_two_sync_workers_deliver_every_context_on_sigterm(mona_server, preload):
    args = ["--preload"] if preload else []
    app = "example_apps.django_app.wsgi:application"
    with gunicorn(app, mona_env(mona_server), *args) as server:
        server.wait_ready("/health")
        expected = send_requests(server.url, 30)
        assert mona_server.messages() == []  # only the shutdown flushes
        assert server.stop() == 0, server.output
    assert_received(mona_server, expected)


def test_runserver_delivers_every_context_on_sigterm(mona_server):
    env = mona_env(mona_server)
    with python_script(MANAGE, env, "runserver", "--noreload") as server:
        server.wait_ready("/health")
        expected = send_requests(server.url, 30)
        assert mona_server.messages() == []
        # The middleware turned runserver's default SIGTERM into SystemExit(143): atexit flushes.
        assert server.stop() == 143, server.output
    assert_received(mona_server, expected)


def test_uvicorn_asgi_async_views_and_streams_deliver_their_exports(mona_server):
    with uvicorn("example_apps.django_app.asgi:application", mona_env(mona_server)) as server:
        server.wait_ready("/health")
        with requests.Session() as session:
            for n in range(5):
                response = session.get(f"{server.url}/apredict?items=10,{n}", timeout=5)
                assert response.json()["model_version"] == "2026.11-b"
                for stream in ("/astream", "/stream"):  # async, then sync in a worker thread
                    assert session.get(server.url + stream, timeout=5).text.count("row") == 3
                assert session.get(f"{server.url}/items/{n}", timeout=5).status_code == 200
        assert server.stop() == uvicorn_exit_code_on_sigterm(), server.output
    assert mona_server.wait_for_messages(20, timeout=10)
    received = mona_server.contexts()
    by_route: dict[str, list[dict]] = {}
    for (cls, _), fields in received.items():
        by_route.setdefault(fields["http_route"], []).append({"class": cls, **fields})
    assert {route: len(found) for route, found in by_route.items()} == {
        "/apredict": 5,
        "/astream": 5,
        "/stream": 5,
        "/items/<int:item_id>": 5,
    }
    assert sorted(f["score"] for f in by_route["/apredict"]) == [
        round((10 + n) / 200, 4) for n in range(5)
    ]
    assert all(f["class"] == "ASYNC_RECOMMENDATIONS" for f in by_route["/apredict"])
    streamed = by_route["/astream"] + by_route["/stream"]
    assert all(f["rows_streamed"] == 3 and f["http_status_code"] == 200 for f in streamed)
    assert sorted(f["item_id"] for f in by_route["/items/<int:item_id>"]) == list(range(5))


ASGI_APP = "example_apps.django_app.asgi:application"


@pytest.mark.parametrize(
    "server",
    ["uvicorn --workers 2", "gunicorn --preload -k UvicornWorker"],
)
def test_asgi_worker_processes_deliver_every_context_on_sigterm(mona_server, server):
    """Workers that load the app after the server took SIGTERM, and die by it once
    stopped: no ``atexit``, only ``asgi_application()``'s lifespan shutdown flushes."""
    env = mona_env(mona_server)
    if server.startswith("uvicorn"):
        process = uvicorn(ASGI_APP, env, "--workers", "2")
    else:
        pytest.importorskip("uvicorn.workers")
        process = gunicorn(ASGI_APP, env, "--preload", "-k", "uvicorn.workers.UvicornWorker")
    with process:
        process.wait_ready("/health")
        expected = send_requests(process.url, 30)
        assert mona_server.messages() == []
        assert process.stop() in (0, -signal.SIGTERM), process.output
    assert_received(mona_server, expected)


STOCK_ASGI_APP = "tests.django.stock_asgi:application"


@pytest.mark.parametrize(
    "server",
    ["uvicorn --workers 2", "gunicorn --preload -k UvicornWorker"],
)
def test_the_stock_asgi_py_delivers_every_context_on_sigterm(mona_server, server):
    """Only ``MIDDLEWARE`` edited: Django's own handler, which refuses lifespan, answers
    it once ``MonaMiddleware`` is built into it, so each worker flushes at the lifespan
    shutdown, after its last ``response.close()``. SIGTERM follows the last response at
    once."""
    env = mona_env(mona_server)
    if server.startswith("uvicorn"):
        process = uvicorn(STOCK_ASGI_APP, env, "--workers", "2")
    else:
        pytest.importorskip("uvicorn.workers")
        process = gunicorn(STOCK_ASGI_APP, env, "--preload", "-k", "uvicorn.workers.UvicornWorker")
    with process:
        process.wait_ready("/health")
        expected = send_requests(process.url, 20)
        assert process.stop() in (0, -signal.SIGTERM), process.output
    assert_received(mona_server, expected)
    assert "W003" not in process.output and "Traceback" not in process.output


def test_without_lifespan_each_worker_says_so_once(mona_server):
    """``--lifespan off``: nothing can flush these workers when uvicorn stops them, and
    W003 says so, at most once per worker process however many requests it serves."""
    env = mona_env(mona_server)
    with uvicorn(STOCK_ASGI_APP, env, "--workers", "2", "--lifespan", "off") as process:
        process.wait_ready("/health")
        send_requests(process.url, 10)
        process.stop()
    warned = process.output.count("(mona_middleware.W003)")
    assert 1 <= warned <= 2, process.output
