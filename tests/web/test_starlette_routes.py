"""Route templates of Starlette requests: Mount prefixes included, a server's root_path and
404s left out, whether the middleware is inside the app or wraps it."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")

from starlette.applications import Starlette

from mona_middleware.asgi import MonaASGIMiddleware

from ..asgi.helpers import TestClient, older_than, only
from ..asgi.starlette_app import ROUTES, make_app, routes_seen


def test_route_templates_include_mount_prefixes_and_404_has_none(memory):
    client = TestClient(make_app())
    for path in ("/tenants/acme/items", "/tenants/globex/items", "/tenants/acme/v2/items/3"):
        assert client.get(path).status_code == 200
    assert client.get("/static/css/site.css").text == "static"
    assert client.get("/hosted/5", headers={"host": "api.example.com"}).json() == {"id": 5}
    assert client.get("/tenants/acme/nowhere").status_code == 404
    assert client.post("/items/1").status_code == 405
    assert routes_seen(memory) == [
        ("GET", "-", 404),
        ("GET", "/hosted/{item_id:int}", 200),
        ("GET", "/static", 200),
        ("GET", "/tenants/{tenant}/items", 200),
        ("GET", "/tenants/{tenant}/items", 200),
        ("GET", "/tenants/{tenant}/v2/items/{item_id:int}", 200),
        ("POST", "/items/{item_id:int}", 405),
    ]


def test_wrapping_the_whole_app_from_outside_works_the_same(memory):
    app = MonaASGIMiddleware(Starlette(routes=ROUTES), handle_sigterm=False)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/tenants/acme/v2/items/3").status_code == 200
    assert client.get("/boom").status_code == 500
    assert routes_seen(memory) == [
        ("GET", "/boom", 500),
        ("GET", "/tenants/{tenant}/v2/items/{item_id:int}", 200),
    ]
    assert only(memory, http_route="/boom")["exception_type"] == "ValueError"


def test_a_server_root_path_is_not_part_of_the_template(memory):
    client = TestClient(make_app(), root_path="/api")
    # Starlette < 0.35 routes on a path that leaves the root_path out (as uvicorn < 0.26
    # sent it); since 0.35 the path includes it, as the ASGI spec says.
    path = "/tenants/acme/items" if older_than("starlette", "0.35") else "/api/tenants/acme/items"
    assert client.get(path).status_code == 200
    assert routes_seen(memory) == [("GET", "/tenants/{tenant}/items", 200)]
