"""Falcon, WSGI and ASGI: ``req.uri_template``, copied into the environ / scope by the
``process_resource`` component the middleware adds to the ``falcon.App`` it wraps."""

from __future__ import annotations

import pytest

pytest.importorskip("falcon")

import falcon
import falcon.asgi
from falcon import testing

from mona_middleware.asgi import MonaASGIMiddleware
from mona_middleware.wsgi import MonaWSGIMiddleware

from .helpers import routes_seen


class Item:
    def on_get(self, req, resp, item_id):
        resp.media = {"id": item_id}


class Orders:
    def on_post(self, req, resp, shop):
        resp.status = falcon.HTTP_201


class Boom:
    def on_get(self, req, resp):
        raise ValueError("boom")


class AsyncItem:
    async def on_get(self, req, resp, item_id):
        resp.media = {"id": item_id}


class AsyncOrders:
    async def on_post(self, req, resp, shop):
        resp.status = falcon.HTTP_201


EXPECTED = [
    ("GET", "-", 404),  # never the raw path
    ("GET", "/items/{item_id:int}", 200),
    ("GET", "/items/{item_id:int}", 200),
    ("POST", "/shops/{shop}/orders", 201),
]


def exercise(client: testing.TestClient) -> None:
    assert client.simulate_get("/items/1").json == {"id": 1}
    assert client.simulate_get("/items/2").status_code == 200
    assert client.simulate_post("/shops/acme/orders").status_code == 201
    assert client.simulate_get("/nowhere").status_code == 404


def test_wsgi_templates(memory):
    app = falcon.App()
    app.add_route("/items/{item_id:int}", Item())
    app.add_route("/shops/{shop}/orders", Orders())
    app.add_route("/boom", Boom())
    wrapped = MonaWSGIMiddleware(app, handle_sigterm=False)
    MonaWSGIMiddleware(app, handle_sigterm=False)  # wrapping twice adds one component
    client = testing.TestClient(wrapped)
    exercise(client)
    assert client.simulate_get("/boom").status_code == 500  # Falcon's own error response
    assert routes_seen(memory) == sorted([*EXPECTED, ("GET", "/boom", 500)])


def test_asgi_templates(memory):
    app = falcon.asgi.App()
    app.add_route("/items/{item_id:int}", AsyncItem())
    app.add_route("/shops/{shop}/orders", AsyncOrders())
    exercise(testing.TestClient(MonaASGIMiddleware(app, handle_sigterm=False)))
    assert routes_seen(memory) == EXPECTED
