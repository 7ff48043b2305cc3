"""aiohttp under its own runner (AppRunner + TCPSite on 127.0.0.1), a real client, and the
real local Mona server: one context per request with the other adapters' fields.

The exporter's flush interval is 30 s here, so what reaches the Mona server was sent by
the flush on the app's cleanup.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("aiohttp")

import aiohttp
from aiohttp import web

import mona_middleware as mona
from mona_middleware.aiohttp import MONITOR, RECORDER, instrument, route

from ..conftest import rest_options
from ..servers import mona_env, python_script
from .aiohttp_app import make_app

Client = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


async def serve(app: web.Application, traffic: Client, mona_server: Any) -> None:
    """Serve ``app`` on 127.0.0.1, run ``traffic`` against it, then stop the runner."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            await asyncio.wait_for(traffic(session, f"http://127.0.0.1:{port}"), 30)
        assert mona_server.messages() == []  # held until the cleanup
    finally:
        await asyncio.wait_for(runner.cleanup(), 30)


def by_route(mona_server: Any) -> dict[str | None, list[dict[str, Any]]]:
    found: dict[str | None, list[dict[str, Any]]] = {}
    for (cls, context_id), fields in mona_server.contexts().items():
        assert cls == "AIOHTTP_API" and len(context_id) == 36
        assert fields.pop("duration_ms") > 0
        found.setdefault(fields.get("http_route"), []).append(fields)
    return found


async def every_kind_of_request(session: aiohttp.ClientSession, url: str) -> None:
    for n in (1, 2, 3):
        async with session.get(f"/items/{n}") as response:
            assert await response.json() == {"id": n}
    async with session.post("/predict", json={"items": [1, 20, 30]}) as response:
        assert response.status == 200
    async with session.get("/boom") as response:
        assert response.status == 500
    async with session.get("/missing") as response:
        assert response.status == 404
    async with session.get("/no/such/path") as response:
        assert response.status == 404
    async with session.post("/items/1") as response:
        assert response.status == 405
    async with session.get("/stream") as response:
        assert await response.text() == "row 0\nrow 1\nrow 2\n"
    async with session.get("/health") as response:
        assert await response.text() == "ok None"  # excluded: passes through, no context
    async with session.get("/private") as response:
        assert response.status == 401
    async with session.get("/admin/users/ada") as response:
        assert await response.text() == "user"


def test_every_kind_of_request_is_one_context_with_exact_fields(mona_server):
    app = make_app(**rest_options(mona_server, flush_interval=30), handle_sigterm=False)
    asyncio.run(serve(app, every_kind_of_request, mona_server))
    found = by_route(mona_server)
    assert sorted(found["/items/{item_id}"], key=lambda f: f["item_id"]) == [
        {"http_method": "GET", "http_route": "/items/{item_id}", "http_status_code": 200,
         "item_id": n}
        for n in (1, 2, 3)
    ]  # fmt: skip
    assert found["/predict"] == [
        {"http_method": "POST", "http_route": "/predict", "http_status_code": 200,
         "item_count": 3, "score": 51}
    ]  # fmt: skip
    assert found["/boom"] == [
        {"http_method": "GET", "http_route": "/boom", "http_status_code": 500,
         "exception_type": "ValueError", "before": "crash"}
    ]  # fmt: skip
    assert found["/missing"] == [
        {"http_method": "GET", "http_route": "/missing", "http_status_code": 404}
    ]
    assert found["/stream"] == [
        {"http_method": "GET", "http_route": "/stream", "http_status_code": 200, "rows": 3}
    ]
    assert found["/private"] == [  # the user's middleware answered: still recorded
        {"http_method": "GET", "http_route": "/private", "http_status_code": 401}
    ]
    assert found["/admin/users/{name}"] == [  # the sub-application's prefix included
        {"http_method": "GET", "http_route": "/admin/users/{name}", "http_status_code": 200,
         "user": "ada"}
    ]  # fmt: skip
    # no resource matched: no route rather than the raw path
    assert sorted(found[None], key=lambda f: f["http_method"]) == [
        {"http_method": "GET", "http_status_code": 404},
        {"http_method": "POST", "http_status_code": 405},
    ]
    assert sum(len(contexts) for contexts in found.values()) == 11  # /health excluded


def test_hooks_headers_context_id_and_renamed_fields(mona_server):
    seen = []
    app = make_app(
        **rest_options(mona_server, flush_interval=30),
        handle_sigterm=False,
        capture_headers="User-Agent, Authorization",
        context_id_header="X-Request-ID",
        field_names={"route": "endpoint", "duration_ms": None},
        request_hook=lambda ctx, request: seen.append(("request", request.path)),
        response_hook=lambda ctx, request, response: seen.append(("response", response.status)),
    )
    headers = {"User-Agent": "probe/1", "Authorization": "Bearer s3cr3t", "X-Request-ID": "r-1"}

    async def one_request(session: aiohttp.ClientSession, url: str) -> None:
        async with session.get("/items/5", headers=headers) as response:
            assert response.status == 200

    asyncio.run(serve(app, one_request, mona_server))
    assert seen == [("request", "/items/5"), ("response", 200)]
    assert mona_server.contexts() == {
        ("AIOHTTP_API", "r-1"): {
            "http_method": "GET",
            "endpoint": "/items/{item_id}",
            "http_status_code": 200,
            "item_id": 5,
            "header_user_agent": "probe/1",
            "header_authorization": "[REDACTED]",
        }
    }


def test_enabled_false_passes_everything_through(mona_server):
    app = make_app(**rest_options(mona_server, flush_interval=30), enabled=False)

    async def traffic(session: aiohttp.ClientSession, url: str) -> None:
        async with session.get("/items/5") as response:
            assert response.status == 200

    asyncio.run(serve(app, traffic, mona_server))
    assert mona.flush(5) and mona_server.messages() == []


def test_instrument_twice_adds_one_middleware_and_one_cleanup():
    app = web.Application()
    first = instrument(app, handle_sigterm=False)
    assert instrument(app, handle_sigterm=False) is first and app[RECORDER] is first
    assert MONITOR is RECORDER  # the name before 0.2 still imports
    flushes = [cb for cb in app.on_cleanup if getattr(cb, "__name__", "") == "_flush_on_cleanup"]
    assert len(app.middlewares) == 1 and len(flushes) == 1


def test_route_is_the_canonical_path_of_the_matched_resource():
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get(r"/files/{name:.+}", handler)

    async def resolve(path: str, method: str = "GET") -> str | None:
        from aiohttp.test_utils import make_mocked_request

        request = make_mocked_request(method, path, app=app)
        match_info = await app.router.resolve(request)
        request._match_info = match_info  # what aiohttp's handler does before middlewares
        return route(request)

    assert asyncio.run(resolve("/files/a/b.txt")) == "/files/{name}"
    assert asyncio.run(resolve("/elsewhere")) is None


def test_python_app_py_with_run_app_flushes_at_sigterm(mona_server):
    """``web.run_app`` runs the cleanup at SIGTERM: every request reaches Mona."""
    from ..servers import ROOT

    script = ROOT / "tests" / "aiohttp" / "aiohttp_app.py"
    with python_script(script, mona_env(mona_server)) as server:
        server.wait_ready("/health")
        import requests

        session = requests.Session()
        for n in range(5):
            assert session.get(f"{server.url}/items/{n}", timeout=5).json() == {"id": n}
        assert session.get(f"{server.url}/boom", timeout=5).status_code == 500
        assert mona_server.messages() == []
        assert server.stop(signal.SIGTERM) == 0, server.output
    found = by_route(mona_server)
    assert sorted(f["item_id"] for f in found["/items/{item_id}"]) == list(range(5))
    assert found["/boom"][0]["exception_type"] == "ValueError"
    assert sum(len(contexts) for contexts in found.values()) == 6
