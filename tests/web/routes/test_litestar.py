"""Litestar: the template its router leaves in ``scope["path_template"]``, whether the
middleware wraps the app or Litestar builds it into its own middleware stack."""

from __future__ import annotations

import pytest

pytest.importorskip("litestar")

from litestar import Controller, Litestar, Router, get, post
from litestar.middleware import DefineMiddleware
from litestar.testing import TestClient

from mona_middleware.asgi import MonaASGIMiddleware

from .helpers import routes_seen

# Litestar >= 2.2x prefers FromPath[...] annotations; the inferred style works in every 2.x.
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated inferred style")


@get("/items/{item_id:int}")
async def item(item_id: int) -> dict:
    return {"id": item_id}


@post("/items")
async def create() -> dict:
    return {}


class Orders(Controller):
    path = "/orders"

    @get("/{order_id:str}/lines/{line:int}")
    async def line(self, order_id: str, line: int) -> dict:
        return {"order": order_id, "line": line}


@get("/boom")
async def boom() -> None:
    raise ValueError("boom")


def handlers() -> list:
    return [item, create, boom, Router(path="/v1", route_handlers=[Orders])]


def test_templates_when_the_middleware_wraps_the_app(memory):
    app = MonaASGIMiddleware(Litestar(route_handlers=handlers()), handle_sigterm=False)
    with TestClient(app) as client:
        assert client.get("/items/3").json() == {"id": 3}
        assert client.get("/items/4").status_code == 200
        assert client.post("/items").status_code == 201
        assert client.get("/v1/orders/a-17/lines/2").json() == {"order": "a-17", "line": 2}
        assert client.get("/boom").status_code == 500
        assert client.get("/nowhere/5").status_code == 404
    assert routes_seen(memory) == [
        ("GET", "-", 404),  # never the raw path
        ("GET", "/boom", 500),
        ("GET", "/items/{item_id}", 200),
        ("GET", "/items/{item_id}", 200),
        ("GET", "/v1/orders/{order_id}/lines/{line}", 200),
        ("POST", "/items", 201),
    ]


def test_templates_from_litestars_own_middleware_stack(memory):
    mona = DefineMiddleware(MonaASGIMiddleware, handle_sigterm=False)
    app = Litestar(route_handlers=handlers(), middleware=[mona])
    with TestClient(app) as client:
        assert client.get("/v1/orders/b/lines/9").status_code == 200
    assert routes_seen(memory) == [("GET", "/v1/orders/{order_id}/lines/{line}", 200)]
