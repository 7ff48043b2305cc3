"""MonaMiddleware through Django's own test clients: one context per request, closed when sent."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("django")

from django.test import AsyncClient, Client, override_settings

import mona_middleware as mona


def contexts(memory) -> list[dict]:
    assert mona.flush(5)
    return list(memory.contexts().values())


def only(memory, **match) -> dict:
    found = [f for f in contexts(memory) if all(f.get(k) == v for k, v in match.items())]
    assert len(found) == 1, memory.contexts()
    return found[0]


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


def test_streamed_response_closes_after_the_last_chunk_with_its_exports(memory):
    response = Client().get("/stream")
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"0\n"
    assert mona.flush(5) and memory.contexts() == {}  # still streaming: nothing sent yet
    assert b"".join(chunks) == b"1\n2\n"
    fields = only(memory, http_route="/stream")
    assert fields["rows"] == 3 and fields["http_status_code"] == 200
    assert mona.current_context() is None


def test_a_stream_failing_midway_records_the_exception(memory):
    response = Client().get("/stream-fails")
    with pytest.raises(RuntimeError, match="mid-stream"):
        b"".join(response.streaming_content)
    assert only(memory, http_route="/stream-fails")["exception_type"] == "RuntimeError"


def test_async_streaming_through_the_async_client(memory):
    async def main() -> list[bytes]:
        response = await AsyncClient().get("/astream")
        chunks = []
        async for chunk in response.streaming_content:
            chunks.append(chunk)
            if len(chunks) == 1:
                assert mona.flush(5) and memory.contexts() == {}
        assert mona.current_context() is None  # left in the task that opened it
        return chunks

    assert asyncio.run(main()) == [b"0\n", b"1\n", b"2\n"]
    fields = only(memory, http_route="/astream")
    assert fields["rows"] == 3 and fields["http_status_code"] == 200


def test_async_client_sync_views_and_closing_in_another_thread(memory):
    async def main() -> None:
        client = AsyncClient()
        assert (await client.get("/items/5")).status_code == 200
        # The async client closes a whole response in a worker thread (as Django's ASGI
        # handler does): the request's task must not keep the closed context.
        assert mona.current_context() is None
        with pytest.raises(ValueError):
            await client.get("/boom")

    asyncio.run(main())
    assert only(memory, http_route="/items/<int:item_id>")["item_id"] == 5
    assert only(memory, http_route="/boom")["exception_type"] == "ValueError"


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
