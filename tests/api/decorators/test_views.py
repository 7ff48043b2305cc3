"""@monitor on real framework views: it names the request's context, and an excluded
request (or a disabled middleware) records nothing, decorated or not."""

from __future__ import annotations

import pytest

import mona_middleware as mona

flask = pytest.importorskip("flask")
pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from mona_middleware.asgi import MonaASGIMiddleware  # noqa: E402
from mona_middleware.flask import MonaFlask  # noqa: E402

from ...asgi.helpers import TestClient  # noqa: E402


def flask_app(**options) -> flask.Flask:
    app = flask.Flask("decorated")
    MonaFlask(app, context_class="API", handle_sigterm=False, **options)

    @app.get("/score/<int:n>")
    @mona.monitor("SCORING", fields={"model": "v3"})
    def score(n: int):
        mona.export({"n": n})
        with mona.sub_context("FEATURES", sub_id="f"):
            mona.export({"count": 3})
        return {"n": n}

    @app.get("/health")
    @mona.monitor("HEALTH")
    def health():
        assert mona.current_context() is None  # nothing to add to: the request is excluded
        assert mona.export({"ignored": True}) is False
        return {"ok": True}

    return app


def test_monitor_on_a_flask_view_names_the_request_context(memory):
    client = flask_app(excluded_urls=["^/health$"]).test_client()
    assert client.get("/score/7").json == {"n": 7}
    assert client.get("/health").status_code == 200
    assert mona.flush(5)
    contexts = memory.contexts()
    [(request_id, fields)] = [(i, f) for (c, i), f in contexts.items() if c == "SCORING"]
    assert fields["model"] == "v3" and fields["n"] == 7 and fields["http_status_code"] == 200
    assert fields["http_route"] == "/score/<int:n>"
    assert contexts[("FEATURES", f"{request_id}.f")] == {"count": 3}
    assert {c for c, _ in contexts} == {"SCORING", "FEATURES"}  # no HEALTH, no API


def test_monitor_records_nothing_when_the_middleware_is_disabled(memory):
    client = flask_app(enabled=False).test_client()
    assert client.get("/health").status_code == 200
    assert mona.flush(5)
    assert memory.contexts() == {}  # @monitor does not open a context of its own either


async def item(request):
    mona.export({"item": request.path_params["item_id"]})
    return JSONResponse({"ok": True})


@mona.monitor("PING")
async def ping(request):
    assert mona.export({"ignored": True}) is False
    return JSONResponse({"ok": True})


def test_monitor_on_a_starlette_endpoint_names_the_request_context(memory):
    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", mona.monitor("ITEMS", fields={"v": 1})(item)),
            Route("/ping", ping),
        ],
        middleware=[
            Middleware(
                MonaASGIMiddleware,
                context_class="API",
                excluded_urls="^/ping$",
                handle_sigterm=False,
            )
        ],
    )
    with TestClient(app) as client:
        assert client.get("/items/5").status_code == 200
        assert client.get("/ping").status_code == 200
    assert mona.flush(5)
    [(key, fields)] = memory.contexts().items()
    assert key[0] == "ITEMS" and fields["item"] == 5 and fields["v"] == 1
    assert fields["http_route"] == "/items/{item_id:int}"
