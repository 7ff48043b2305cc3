"""The example apps under real servers: N requests, SIGTERM, exactly N contexts at Mona.

``mona_env`` sets a 30 s flush interval, so nothing reaches the Mona server before the
stop: what arrives was flushed by the lifespan shutdown (or ``atexit``) of each process.
"""

from __future__ import annotations

import importlib.util
import signal
from collections import Counter

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
requests = pytest.importorskip("requests")

from mona_middleware._runtime.signals import EXIT_CODE_SIGTERM  # noqa: E402

from ..servers import BIN, ROOT, AppServer, gunicorn, mona_env, python_script, uvicorn  # noqa: E402

ITEMS = range(1, 6)


# uvicorn >= 0.29 re-raises SIGTERM once it has shut down: the process then dies by the
# signal (no atexit: only the lifespan flush sends), or exits 143 through
# mona_middleware's SIGTERM handler when the middleware was built before uvicorn started.
STOPPED = (0, -signal.SIGTERM, EXIT_CODE_SIGTERM)


def exercise(server: AppServer, *, tenants: bool) -> None:
    """Send the same traffic to either example; /health (excluded) is sent too."""
    session = requests.Session()
    for n in range(4):
        response = session.post(server.url + "/predict", json={"items": [n + 1, 20, 30]}, timeout=5)
        assert response.status_code == 200
    for n in ITEMS:
        assert session.get(f"{server.url}/items/{n}", timeout=5).json() == {"id": n}
    for _ in range(2):
        assert session.get(server.url + "/stream", timeout=5).text == "row 0\nrow 1\nrow 2\n"
        assert session.get(server.url + "/health", timeout=5).text == "ok"
        # uvicorn closes the connection after an app exception: not on the shared session
        assert requests.get(server.url + "/fail", timeout=5).status_code == 500
    if tenants:
        assert session.get(server.url + "/tenants/acme/model", timeout=5).status_code == 200


def check_contexts(mona_server, *, predict_class: str, item_route: str, tenants: bool) -> None:
    contexts = mona_server.contexts()
    seen = Counter(
        (key[0], fields.get("http_route"), fields.get("http_status_code"))
        for key, fields in contexts.items()
    )
    expected = Counter(
        {
            (predict_class, "/predict", 200): 4,
            ("RECOMMENDATIONS", item_route, 200): len(ITEMS),
            ("RECOMMENDATIONS", "/stream", 200): 2,
            ("RECOMMENDATIONS", "/fail", 500): 2,
        }
    )
    if tenants:
        expected[("RECOMMENDATIONS", "/tenants/{tenant}/model", 200)] = 1
    assert seen == expected
    by_route = {}
    for fields in contexts.values():
        by_route.setdefault(fields["http_route"], []).append(fields)
    for fields in by_route["/predict"]:
        assert fields["model_version"] == "2026.11-b" and fields["item_count"] == 3
        assert fields["score"] > 0 and fields["feedback_queue_depth"] == 3  # background task
    assert sorted(f["item_id"] for f in by_route[item_route]) == list(ITEMS)
    assert all(f["rows_streamed"] == 3 for f in by_route["/stream"])
    assert all(f["exception_type"] == "RuntimeError" for f in by_route["/fail"])


def serve_and_stop(server: AppServer, mona_server, *, tenants: bool) -> None:
    with server:
        server.wait_ready("/health")
        exercise(server, tenants=tenants)
        assert mona_server.messages() == []  # held by the exporter until the stop
        assert server.stop() in STOPPED, server.output
    assert "mona_middleware: could not" not in server.output, server.output
    assert "lifespan' protocol" not in server.output, server.output


def test_uvicorn_serving_the_starlette_example(mona_server):
    server = uvicorn("example_apps.starlette_app:app", mona_env(mona_server))
    serve_and_stop(server, mona_server, tenants=True)
    check_contexts(
        mona_server,
        predict_class="RECOMMENDATIONS",
        item_route="/items/{item_id:int}",
        tenants=True,
    )


def test_uvicorn_serving_the_fastapi_example(mona_server):
    server = uvicorn("example_apps.fastapi_app:app", mona_env(mona_server))
    serve_and_stop(server, mona_server, tenants=False)
    check_contexts(
        mona_server, predict_class="PREDICTIONS", item_route="/items/{item_id}", tenants=False
    )


def test_python_fastapi_app_py_started_as_a_script(mona_server):
    server = python_script(ROOT / "example_apps" / "fastapi_app.py", mona_env(mona_server))
    serve_and_stop(server, mona_server, tenants=False)
    check_contexts(
        mona_server, predict_class="PREDICTIONS", item_route="/items/{item_id}", tenants=False
    )


def uvicorn_worker_class() -> str | None:
    for module in ("uvicorn_worker", "uvicorn.workers"):
        if importlib.util.find_spec(module) is not None:
            return module + ".UvicornWorker"
    return None


@pytest.mark.skipif(not (BIN / "gunicorn").exists(), reason="gunicorn is not installed")
@pytest.mark.skipif(uvicorn_worker_class() is None, reason="no UvicornWorker (uvicorn-worker)")
def test_gunicorn_with_uvicorn_workers_serving_the_starlette_example(mona_server):
    env = mona_env(mona_server, PYTHONWARNINGS="ignore::DeprecationWarning")
    args = ("--worker-class", uvicorn_worker_class())
    server = gunicorn("example_apps.starlette_app:app", env, *args, workers=2)
    serve_and_stop(server, mona_server, tenants=True)
    check_contexts(
        mona_server,
        predict_class="RECOMMENDATIONS",
        item_route="/items/{item_id:int}",
        tenants=True,
    )


def test_uvicorn_lifespan_on_with_an_app_that_has_no_lifespan(mona_server):
    server = uvicorn("tests.asgi.raw_asgi_app:app", mona_env(mona_server), "--lifespan", "on")
    with server:
        server.wait_ready("/ready")
        for n in range(5):
            assert requests.get(f"{server.url}/raw/{n}", timeout=5).text == "raw"
        assert server.stop() in STOPPED, server.output
    assert "Application shutdown complete" in server.output
    assert "Exception in 'lifespan'" not in server.output
    contexts = mona_server.contexts()
    assert sorted(fields["raw"] for fields in contexts.values()) == [f"/raw/{n}" for n in range(5)]
    assert {key[0] for key in contexts} == {"RAW_ASGI"}


def test_an_app_whose_start_up_fails_does_not_start_under_lifespan_on(mona_server):
    """Its start-up failed after reading ``lifespan.startup``: uvicorn fails the start as
    it would without us (we used to answer ``startup.complete`` for it)."""
    app = "tests.asgi.misconfigured_apps:no_database"
    with uvicorn(app, mona_env(mona_server), "--lifespan", "on") as server:
        code = server.process.wait(timeout=30)
        output = server.process.communicate()[0]
    assert code != 0, output
    assert "Application startup failed" in output and "database unreachable" in output


@pytest.mark.parametrize(
    ("app", "option", "closest"),
    [
        ("typo_fastapi", "contextclass", "context_class"),
        ("typo_starlette", "batch_sise", "batch_size"),
    ],
)
def test_an_option_error_found_on_the_first_call_never_fails_a_request(
    mona_server, app, option, closest
):
    """``add_middleware(MonaASGIMiddleware, contextclass=...)``: Starlette builds the stack
    on its first call, where raising would answer 500 to every request. Logged once at
    ERROR, naming the option and the closest valid one; requests pass through."""
    with uvicorn(f"tests.asgi.misconfigured_apps:{app}", mona_env(mona_server)) as server:
        path = "/items/3" if app == "typo_fastapi" else "/"
        server.wait_ready(path)
        for _ in range(5):
            assert requests.get(server.url + path, timeout=5).status_code == 200
        assert server.stop() in STOPPED, server.output
    errors = [line for line in server.output.splitlines() if "cannot monitor this app" in line]
    assert len(errors) == 1, server.output
    assert f"'{option}'" in errors[0] and f"did you mean '{closest}'?" in errors[0]
    assert " 500 " not in server.output and "Traceback" not in server.output
    assert mona_server.contexts() == {}  # unmonitored, as the log says
