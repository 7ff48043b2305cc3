"""Bottle: the route its router leaves in ``environ["bottle.route"]``, read after the app
ran; WebTest (the functional test client Bottle's documentation uses) drives it."""

from __future__ import annotations

import pytest

pytest.importorskip("bottle")
pytest.importorskip("webtest")

import bottle
import webtest

from mona_middleware.wsgi import MonaWSGIMiddleware

from .helpers import routes_seen


def make_app() -> bottle.Bottle:
    app = bottle.Bottle()

    @app.get("/items/<item_id:int>")
    def item(item_id):
        return {"id": item_id}

    @app.post("/shops/<shop>/orders")
    def order(shop):
        bottle.response.status = 201
        return {"shop": shop}

    @app.get("/boom")
    def boom():
        raise ValueError("boom")

    return app


def test_templates_from_the_matched_route(memory):
    client = webtest.TestApp(MonaWSGIMiddleware(make_app(), handle_sigterm=False))
    assert client.get("/items/1").json == {"id": 1}
    assert client.get("/items/2").status_int == 200
    assert client.post("/shops/acme/orders").status_int == 201
    assert client.get("/boom", expect_errors=True).status_int == 500  # Bottle's error page
    assert client.get("/nowhere", status=404).status_int == 404
    assert routes_seen(memory) == [
        ("GET", "-", 404),
        ("GET", "/boom", 500),
        ("GET", "/items/<item_id:int>", 200),
        ("GET", "/items/<item_id:int>", 200),
        ("POST", "/shops/<shop>/orders", 201),
    ]
