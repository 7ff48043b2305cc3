"""Pyramid: ``request.matched_route.pattern``, copied into the environ by the
``ContextFound`` subscriber the middleware registers on the wrapped app's registry;
WebTest (Pyramid's functional test client) drives it."""

from __future__ import annotations

import pytest

pytest.importorskip("pyramid")
pytest.importorskip("webtest")

import webtest
from pyramid.config import Configurator
from pyramid.response import Response

from mona_middleware.wsgi import MonaWSGIMiddleware

from .helpers import routes_seen


def item(request):
    return Response(json_body={"id": int(request.matchdict["item_id"])})


def order(request):
    return Response(status=201, json_body={"shop": request.matchdict["shop"]})


def make_app():
    with Configurator() as config:
        config.add_route("item", "/items/{item_id:\\d+}")
        config.add_view(item, route_name="item", request_method="GET")
        with config.route_prefix_context("/shops/{shop}"):
            config.add_route("order", "orders")
        config.add_view(order, route_name="order", request_method="POST")
        return config.make_wsgi_app()


def test_templates_from_the_matched_route(memory):
    app = make_app()
    client = webtest.TestApp(MonaWSGIMiddleware(app, handle_sigterm=False))
    MonaWSGIMiddleware(app, handle_sigterm=False)  # wrapping twice subscribes once
    assert client.get("/items/1").json == {"id": 1}
    assert client.get("/items/2").status_int == 200
    assert client.post("/shops/acme/orders").status_int == 201
    assert client.get("/nowhere", status=404).status_int == 404
    assert routes_seen(memory) == [
        ("GET", "-", 404),
        ("GET", "/items/{item_id:\\d+}", 200),
        ("GET", "/items/{item_id:\\d+}", 200),
        ("POST", "/shops/{shop}/orders", 201),
    ]
