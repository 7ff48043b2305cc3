"""Starlette through its TestClient and by hand: one context per request, closed when sent."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import mona_middleware as mona
from mona_middleware.asgi import MonaASGIMiddleware

from .helpers import TestClient, call, older_than, only
from .starlette_app import ROUTES, make_app, routes_seen


def test_request_fields_and_exports_land_in_one_context(memory):
    client = TestClient(make_app())
    assert client.get("/items/7").json() == {"id": 7}
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "SHOP_API" and len(key[1]) == 36
    assert fields.pop("duration_ms") > 0
    assert fields == {
        "item_id": 7,
        "http_method": "GET",
        "http_route": "/items/{item_id:int}",
        "http_status_code": 200,
    }
    assert len(memory.messages) == 1


def test_an_exception_is_a_recorded_500_and_propagates_unchanged(memory):
    with pytest.raises(ValueError, match="model crashed"):
        TestClient(make_app()).get("/boom")
    fields = only(memory, http_route="/boom")
    assert fields["exception_type"] == "ValueError" and fields["http_status_code"] == 500
    assert fields["before"] == "crash"


def test_the_framework_still_answers_500_and_handled_errors_keep_their_status(memory):
    client = TestClient(make_app(), raise_server_exceptions=False)
    assert client.get("/boom").status_code == 500
    assert client.get("/missing").status_code == 404
    assert only(memory, http_route="/boom")["exception_type"] == "ValueError"
    assert "exception_type" not in only(memory, http_route="/missing")


def test_head_and_excluded_urls(memory):
    client = TestClient(make_app(excluded_urls=["^/health$"]))
    assert client.head("/items/3").status_code == 200
    assert client.get("/health").text == "ok"
    assert routes_seen(memory) == [("HEAD", "/items/{item_id:int}", 200)]


def test_streamed_response_closes_the_context_after_the_last_chunk(memory):
    seen = []

    def on_send(message):
        ctx = mona.current_context()
        seen.append((message["type"], message.get("more_body", False), ctx.closed))

    asyncio.run(call(make_app(), "/stream", on_send=on_send))
    body = [(more, closed) for kind, more, closed in seen if kind == "http.response.body"]
    assert body == [(True, False), (True, False), (True, False), (False, False)]
    fields = only(memory, http_route="/stream")
    assert fields["rows"] == 3 and fields["http_status_code"] == 200


def test_a_stream_failing_midway_keeps_its_status_and_records_the_exception(memory):
    with pytest.raises(Exception) as raised:
        TestClient(make_app()).get("/stream-fails")
    error = raised.value
    if older_than("starlette", "0.46") and not isinstance(error, RuntimeError):
        # Starlette < 0.46 lets anyio 4's one-member exception group out of the failing
        # stream; the middleware re-raised it unchanged (and recorded the error inside).
        (error,) = error.exceptions
    assert isinstance(error, RuntimeError) and str(error) == "mid-stream"
    fields = only(memory, http_route="/stream-fails")
    assert fields["exception_type"] == "RuntimeError" and fields["http_status_code"] == 200


def test_background_task_exports_land_in_the_request_context(memory):
    started = time.perf_counter()
    assert TestClient(make_app()).get("/background").text == "ok"
    assert time.perf_counter() - started >= 0.3  # the client waited for the background task
    fields = only(memory, http_route="/background")
    assert fields["view"] == "ran" and fields["background"] == "done"
    assert len(memory.messages) == 1  # in the context, not a late follow-up message
    assert fields["duration_ms"] < 250  # the response's time, not the background task's


def test_websockets_pass_through_untouched_when_off(memory):
    with TestClient(make_app(websockets=False)).websocket_connect("/ws") as websocket:
        assert websocket.receive_json() == {"context": "None"}
    assert mona.flush(5) and memory.messages == []


def test_add_middleware_hooks_and_captured_headers(memory):
    seen = []
    app = Starlette(routes=ROUTES)
    app.add_middleware(
        MonaASGIMiddleware,
        handle_sigterm=False,
        capture_headers="User-Agent, Authorization",
        context_id_header="X-Request-ID",
        request_hook=lambda ctx, scope: seen.append(("request", scope["path"])),
        response_hook=lambda ctx, scope, status, headers: seen.append(("response", status)),
    )
    headers = {"User-Agent": "probe/1", "Authorization": "Bearer s3cr3t", "X-Request-ID": "r-1"}
    TestClient(app).get("/items/1", headers=headers)
    assert seen == [("request", "/items/1"), ("response", 200)]
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key == ("HTTP_REQUEST", "r-1")
    assert fields["header_user_agent"] == "probe/1"
    assert fields["header_authorization"] == "[REDACTED]"


def test_a_failing_hook_never_breaks_the_request(memory, caplog):
    caplog.set_level(logging.ERROR)
    client = TestClient(make_app(response_hook=lambda *args: 1 / 0))
    assert client.get("/items/2").json() == {"id": 2}
    assert "raised; the request goes on" in caplog.text
    assert only(memory, item_id=2)["http_status_code"] == 200


def test_unknown_option_fails_at_start_naming_it():
    # Built directly (at import, or by uvicorn loading the app): raised at start-up.
    with pytest.raises(
        mona.MonaConfigError, match=r"'context_klass' \(did you mean 'context_class'"
    ):
        MonaASGIMiddleware(make_app(), context_klass="X")


def test_disabled_middleware_passes_requests_through(memory):
    assert TestClient(make_app(enabled=False)).get("/items/1").json() == {"id": 1}
    assert mona.flush(5) and memory.messages == []


def test_each_request_gets_a_fresh_context_even_if_the_server_leaks_one(memory):
    app = make_app()

    async def requests_in_one_leaky_task():
        with mona.context("LEAKED", context_id="leak") as leaked:
            await call(app, "/items/1")
            await call(app, "/items/2")
            assert mona.current_context() is leaked

    asyncio.run(requests_in_one_leaky_task())
    assert mona.flush(5)
    contexts = memory.contexts()
    assert ("LEAKED", "leak") not in contexts
    assert sorted(f["item_id"] for f in contexts.values()) == [1, 2]


def test_any_asgi_app_without_a_router_gets_no_route(memory):
    async def raw(scope, receive, send):
        mona.export({"raw": True})
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"made"})

    app = MonaASGIMiddleware(raw, handle_sigterm=False)
    sent = asyncio.run(call(app, "/anything", method="PUT"))
    assert sent[-1]["body"] == b"made"
    fields = only(memory, raw=True)
    assert (fields["http_method"], fields["http_status_code"]) == ("PUT", 201)
    assert "http_route" not in fields


def test_excluded_urls_from_the_environment(memory, monkeypatch):
    monkeypatch.setenv("MONA_MIDDLEWARE_EXCLUDED_URLS", "^/health$, ^/items/1$")
    client = TestClient(make_app())
    for path in ("/health", "/items/1", "/items/2"):
        assert client.get(path).status_code == 200
    assert routes_seen(memory) == [("GET", "/items/{item_id:int}", 200)]
    assert only(memory, http_route="/items/{item_id:int}")["item_id"] == 2


def test_an_excluded_request_does_not_export_into_a_context_a_server_leaked(memory):
    async def health(request):
        return PlainTextResponse(str(mona.export({"health": "checked"})))

    app = Starlette(
        routes=[Route("/health", health)],
        middleware=[
            Middleware(MonaASGIMiddleware, excluded_urls="^/health$", handle_sigterm=False)
        ],
    )

    async def request_in_a_leaky_task():
        with mona.context("LEAKED", context_id="leak") as leaked:
            sent = await call(app, "/health")
            assert mona.current_context() is leaked  # restored after the request
            mona.export({"after": "request"})
        return sent[-1]["body"]

    assert asyncio.run(request_in_a_leaky_task()) == b"False"  # no context to export into
    assert mona.flush(5)
    assert memory.contexts() == {("LEAKED", "leak"): {"after": "request"}}


def test_an_option_error_found_on_a_call_passes_requests_through_logged_once(memory, caplog):
    """Starlette builds ``add_middleware``'s stack at its first call: raising there would
    answer 500 to every request of every client."""
    caplog.set_level(logging.WARNING, logger="mona_middleware")
    for _ in range(2):  # a second app with the same mistake: still logged once
        app = Starlette(routes=ROUTES)
        app.add_middleware(MonaASGIMiddleware, contextclass="SHOP_API", handle_sigterm=False)
        with TestClient(app) as client:
            assert [client.get(f"/items/{n}").status_code for n in range(3)] == [200] * 3
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "'contextclass' (did you mean 'context_class'?)" in error.getMessage()
    assert "pass through unmonitored" in error.getMessage()
    assert mona.flush(5) and memory.contexts() == {}
