"""``MonaMiddleware`` through Django's own test clients: one context per request, its
fields, exceptions, hooks, headers, and requests our code cannot break."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

pytest.importorskip("django")

from django.http import HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings

import mona_middleware as mona
from mona_middleware.django import MonaMiddleware

from . import views
from .conftest import BASE_MONA
from .helpers import contexts, only


def test_request_fields_and_exports_land_in_one_context(memory):
    assert Client().get("/items/7").json() == {"id": 7}
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "HTTP_REQUEST" and len(key[1]) == 36
    assert fields.pop("duration_ms") > 0
    assert fields == {
        "item_id": 7,
        "http_method": "GET",
        "http_route": "/items/<int:item_id>",
        "http_status_code": 200,
    }
    assert mona.current_context() is None  # closed when the client closed the response


def test_route_templates_root_regex_and_unmatched(memory):
    client = Client()
    assert client.get("/").status_code == 200
    assert client.get("/legacy/abc/").status_code == 200
    assert client.get("/nowhere").status_code == 404
    routes = sorted((f["http_status_code"], f.get("http_route")) for f in contexts(memory))
    assert routes == [(200, "/"), (200, "^legacy/(?P<code>[a-z]+)/$"), (404, None)]


def test_a_view_exception_is_a_recorded_500_and_still_raised_by_the_client(memory):
    with pytest.raises(ValueError, match="model crashed"):
        Client().get("/boom")
    fields = only(memory, http_route="/boom")
    assert fields["exception_type"] == "ValueError" and fields["http_status_code"] == 500
    assert fields["before"] == "crash"


def test_without_raising_the_client_gets_djangos_500(memory):
    response = Client(raise_request_exception=False).get("/boom")
    assert response.status_code == 500
    assert only(memory, http_route="/boom")["exception_type"] == "ValueError"


def test_http404_from_a_view_is_an_answer_not_a_failure(memory):
    assert Client().get("/missing").status_code == 404
    fields = only(memory, http_route="/missing")
    assert fields["http_status_code"] == 404 and "exception_type" not in fields


def test_an_exception_in_another_middleware_is_recorded(memory):
    chain = ["mona_middleware.django.MonaMiddleware", "tests.django.views.exploding_middleware"]
    with override_settings(MIDDLEWARE=chain):
        response = Client(raise_request_exception=False).get("/mw-boom")
    assert response.status_code == 500
    fields = only(memory, http_status_code=500)
    assert fields["exception_type"] == "KeyError" and "http_route" not in fields


@override_settings(MONA={"handle_sigterm": False, "excluded_urls": ["^/health$"]})
def test_head_and_excluded_urls(memory):
    client = Client()
    assert client.head("/items/3").status_code == 200
    response = client.get("/health")
    assert response.content == b"ok" and not hasattr(response.wsgi_request, "_mona_context")
    assert [(f["http_method"], f["http_route"]) for f in contexts(memory)] == [
        ("HEAD", "/items/<int:item_id>")
    ]


def test_monitor_decorator_names_the_context_class_of_each_kind_of_view(memory):
    client = Client()
    assert client.get("/decorated").content == b"scored"
    assert client.get("/cbv/4").content == b"4"
    assert client.get("/async/9").content == b"9"  # an async view under the sync handler

    async def via_asgi() -> None:
        assert (await AsyncClient().get("/async/10")).content == b"10"

    asyncio.run(via_asgi())
    assert mona.flush(5)
    found = {key[0]: fields for key, fields in memory.contexts().items()}
    assert set(found) == {"SCORING", "CBV_SCORING", "ASYNC_SCORING"}
    assert found["SCORING"]["team"] == "ml" and found["SCORING"]["http_route"] == "/decorated"
    assert found["CBV_SCORING"]["kind"] == "cbv" and found["CBV_SCORING"]["n"] == 4
    both = [f for k, f in memory.contexts().items() if k[0] == "ASYNC_SCORING"]
    assert sorted((f["n"], f["echo"]) for f in both) == [(9, 9), (10, 10)]


def test_the_pytest_plugin_fixture_sees_the_request(mona_capture):
    Client().get("/items/11")
    assert mona_capture.only("HTTP_REQUEST")["item_id"] == 11


@override_settings(
    MONA={
        "handle_sigterm": False,
        "capture_headers": ["Authorization", "X-Internal", "Content-Type", "X-Request-Id"],
        "redact_headers": ["x-internal"],
    }
)
def test_redact_headers_adds_to_the_default_redaction(memory):
    headers = {"Authorization": "Bearer s3cr3t", "X-Internal": "hidden", "X-Request-Id": "r-1"}
    Client().post("/v/1", data=b"{}", content_type="application/json", headers=headers)
    (fields,) = contexts(memory)
    assert {k: v for k, v in fields.items() if k.startswith("header_")} == {
        "header_authorization": "[REDACTED]",
        "header_x_internal": "[REDACTED]",
        "header_content_type": "application/json",
        "header_x_request_id": "r-1",
    }


@override_settings(MONA={"handle_sigterm": False, "excluded_urls": ["^/health$"]})
def test_an_excluded_request_does_not_export_into_a_context_a_server_leaked(memory):
    with mona.context("LEAKED", context_id="leak") as leaked:
        assert Client().get("/health").content == b"ok"  # a sync worker thread's leftover
        assert mona.current_context() is leaked

        async def via_asgi() -> None:
            assert (await AsyncClient().get("/health")).content == b"ok"
            assert mona.current_context() is leaked

        asyncio.run(via_asgi())  # the loop's task inherits the leaked context
        mona.export({"after": "requests"})
    assert mona.flush(5)
    assert memory.contexts() == {("LEAKED", "leak"): {"after": "requests"}}


def test_five_hundred_concurrent_sync_requests_each_keep_their_own_value(memory, monkeypatch):
    monkeypatch.setattr(views, "BARRIER", threading.Barrier(50, timeout=20))
    failures = []

    def worker(start: int) -> None:
        client = Client()
        for n in range(start, 500, 50):
            response = client.get(f"/v/{n}")
            if response.content != str(n).encode():
                failures.append((n, response.status_code))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and not any(t.is_alive() for t in threads)
    found = contexts(memory)
    assert len(found) == 500
    assert all(f["n"] == f["echo"] for f in found)
    assert sorted(f["n"] for f in found) == list(range(500))


def test_five_hundred_concurrent_async_requests_each_keep_their_own_value(memory, monkeypatch):
    async def main() -> list[bytes]:
        monkeypatch.setattr(views, "ASYNC_GATE", views.AsyncGate(100))  # made in this loop
        client = AsyncClient()
        responses = await asyncio.gather(*(client.get(f"/av/{n}") for n in range(500)))
        return [response.content for response in responses]

    assert asyncio.run(main()) == [str(n).encode() for n in range(500)]
    found = contexts(memory)
    assert len(found) == 500
    assert all(f["n"] == f["echo"] and f["http_route"] == "/av/<int:n>" for f in found)
    assert sorted(f["n"] for f in found) == list(range(500))


def mona_settings(**options):
    return override_settings(MONA={"handle_sigterm": False, **options})


def test_disabled_middleware_leaves_the_chain(memory):
    with mona_settings(enabled=False):
        response = Client().get("/items/1")
    assert response.json() == {"id": 1}
    assert not hasattr(response.wsgi_request, "_mona_context")
    assert mona.flush(5) and memory.messages == []


def test_hooks_see_the_context_request_and_response(memory):
    seen = []

    def on_request(ctx, request):
        seen.append(("request", request.path, ctx is mona.current_context()))

    def on_response(ctx, request, response):
        seen.append(("response", response.status_code))
        ctx.export({"tenant": request.headers["X-Tenant"]})

    with mona_settings(request_hook=on_request, response_hook=on_response):
        Client().get("/items/1", headers={"X-Tenant": "acme"})
    assert seen == [("request", "/items/1", True), ("response", 200)]
    assert mona.flush(5)
    ((_, fields),) = memory.contexts().items()
    assert fields["tenant"] == "acme"


def test_a_failing_hook_never_breaks_the_request(memory, caplog):
    caplog.set_level(logging.ERROR)
    with mona_settings(request_hook=lambda ctx, request: 1 / 0):
        assert Client().get("/items/2").json() == {"id": 2}
    assert "raised; the request goes on" in caplog.text
    assert mona.flush(5)
    assert [f["item_id"] for f in memory.contexts().values()] == [2]


def test_a_response_our_code_cannot_read_still_goes_out(memory, caplog):
    class Unreadable(HttpResponse):
        @property
        def status_code(self):
            raise RuntimeError("not this one")

        @status_code.setter
        def status_code(self, value):
            pass

    unreadable = Unreadable("still sent")
    middleware = MonaMiddleware(lambda request: unreadable)
    assert middleware(RequestFactory().get("/items/1")) is unreadable
    assert "could not follow the response" in caplog.text
    assert mona.flush(5) and len(memory.contexts()) == 1  # closed at once, not leaked


def test_an_accepted_incoming_context_is_continued_with_prefixed_request_fields(memory):
    baggage = "mona.context_class=GATEWAY,mona.context_id=req-1,userId=alice"
    mona_options = {**BASE_MONA, "accept_incoming_context": True, "service_name": "dj"}
    with override_settings(MONA=mona_options):
        assert Client().get("/items/7", headers={"baggage": baggage}).status_code == 200
        assert Client().get("/items/8").status_code == 200
    assert mona.flush(5)
    contexts = memory.contexts()
    fields = contexts.pop(("GATEWAY", "req-1"))
    assert fields.pop("dj_duration_ms") >= 0
    assert fields == {
        "item_id": 7,
        "dj_http_method": "GET",
        "dj_http_route": "/items/<int:item_id>",
        "dj_http_status_code": 200,
    }
    ((key, own),) = contexts.items()  # no baggage: a context of its own, fields unprefixed
    assert key[0] == "HTTP_REQUEST" and own["http_method"] == "GET"
