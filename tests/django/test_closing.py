"""A request's context closes when Django's response has been sent: streamed, whole, a
file the server may sendfile(), or closed in another thread."""

from __future__ import annotations

import asyncio
import threading
import warnings
import wsgiref.util

import pytest

pytest.importorskip("django")

from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpResponse
from django.test import AsyncClient, Client, RequestFactory

import mona_middleware as mona
from mona_middleware.django import MonaMiddleware, asgi_application

from . import views
from .helpers import contexts, get, only

PAYLOAD = b"model card\n" * 1000


@pytest.fixture
def card(tmp_path, monkeypatch) -> None:
    path = tmp_path / "card.txt"
    path.write_bytes(PAYLOAD)
    monkeypatch.setattr(views, "FILE_PATH", str(path))


def test_a_file_response_is_still_handed_to_the_servers_file_wrapper(memory, card):
    environ = {
        "PATH_INFO": "/download",
        "HTTP_HOST": "testserver",
        "wsgi.file_wrapper": wsgiref.util.FileWrapper,  # as gunicorn's, wsgiref's server
    }
    wsgiref.util.setup_testing_defaults(environ)
    statuses = []
    body = WSGIHandler()(environ, lambda status, headers: statuses.append(status))
    try:
        # Django only does this while response.file_to_stream survives the middleware.
        assert type(body) is wsgiref.util.FileWrapper and statuses == ["200 OK"]
        assert b"".join(body) == PAYLOAD
        assert mona.flush(5) and memory.contexts() == {}  # sent, but not yet closed
    finally:
        body.close()  # the server's close: Django's response.close(), and ours
    (fields,) = contexts(memory)
    assert fields["view"] == "download" and fields["http_route"] == "/download"
    assert fields["http_status_code"] == 200


def test_a_file_response_through_the_test_client_and_the_asgi_handler(memory, card):
    response = Client().get("/download")
    assert b"".join(response.streaming_content) == PAYLOAD
    response.close()
    with warnings.catch_warnings():  # Django's own, on serving a file under ASGI
        warnings.simplefilter("ignore")
        sent = asyncio.run(get(asgi_application(), "/download"))
    assert b"".join(m.get("body", b"") for m in sent) == PAYLOAD
    found = contexts(memory)
    assert [(f["http_route"], f["view"]) for f in found] == [("/download", "download")] * 2


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


def test_a_context_opened_in_one_thread_and_closed_in_another_is_delivered_once(memory):
    response = HttpResponse("x")
    middleware = MonaMiddleware(lambda request: response)
    opener = threading.Thread(target=middleware, args=(RequestFactory().get("/items/1"),))
    opener.start()
    opener.join(5)
    response.close()  # a server closing on another thread, in another contextvars.Context
    response.close()
    assert mona.current_context() is None
    assert mona.flush(5)
    ((_, fields),) = memory.contexts().items()
    assert fields["http_status_code"] == 200
