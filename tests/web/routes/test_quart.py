"""Quart: ``request.url_rule`` (Quart keeps it off the scope), copied there by the
``request_started`` receiver the middleware connects, blueprint prefixes included."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("quart")

from quart import Blueprint, Quart

from mona_middleware.asgi import MonaASGIMiddleware

from .helpers import routes_seen


def make_app() -> Quart:
    app = Quart(__name__)

    @app.get("/items/<int:item_id>")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("boom")

    shop = Blueprint("shop", __name__, url_prefix="/shops/<shop>")

    @shop.route("/orders", methods=["POST"])
    async def order(shop: str) -> tuple[dict, int]:
        return {"shop": shop}, 201

    app.register_blueprint(shop)
    return app


def test_templates_from_the_url_rule(memory):
    app = make_app()
    app.asgi_app = MonaASGIMiddleware(app.asgi_app, handle_sigterm=False)

    async def requests() -> list[int]:
        client = app.test_client()
        statuses = []
        for method, path in [
            ("GET", "/items/1"),
            ("GET", "/items/2"),
            ("POST", "/shops/acme/orders"),
            ("GET", "/boom"),
            ("GET", "/nowhere"),
        ]:
            response = await client.open(path, method=method)
            statuses.append(response.status_code)
        return statuses

    assert asyncio.run(requests()) == [200, 200, 201, 500, 404]
    assert routes_seen(memory) == [
        ("GET", "-", 404),
        ("GET", "/boom", 500),
        ("GET", "/items/<int:item_id>", 200),
        ("GET", "/items/<int:item_id>", 200),
        ("POST", "/shops/<shop>/orders", 201),
    ]
