"""Django: lifespan for workers, files the server may sendfile(), leaks, headers, 500 at once."""

from __future__ import annotations

import asyncio
import threading
import warnings
import wsgiref.util

import pytest

pytest.importorskip("django")

from django.core.handlers.wsgi import WSGIHandler
from django.test import AsyncClient, Client, override_settings

import mona_middleware as mona
from mona_middleware.django import asgi_application
from mona_middleware.transports import InMemoryTransport

from . import views

PAYLOAD = b"model card\n" * 1000


def contexts(memory) -> list[dict]:
    assert mona.flush(5)
    return list(memory.contexts().values())


@pytest.fixture
def held() -> InMemoryTransport:
    """An in-memory exporter that only sends on flush/shutdown."""
    transport = InMemoryTransport()
    mona.configure(transport=transport, flush_interval=30)
    return transport


@pytest.fixture
def card(tmp_path, monkeypatch) -> None:
    path = tmp_path / "card.txt"
    path.write_bytes(PAYLOAD)
    monkeypatch.setattr(views, "FILE_PATH", str(path))


async def get(application, path: str) -> list[dict]:
    """One GET into an ASGI app by a client that stays connected until the app is done."""
    from ..asgi.helpers import http_scope

    sent: list[dict] = []
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never set: Django cancels this once it has answered
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(application(http_scope(path), receive, send), 10)
    return sent


def test_asgi_application_answers_lifespan_and_flushes_at_shutdown(held):
    pytest.importorskip("starlette")  # the ASGI helpers' module needs it
    from ..asgi.helpers import LifespanDriver

    application = asgi_application()

    async def serve() -> list:
        driver = LifespanDriver(application, held)
        answers = [await driver.startup()]
        sent = await get(application, "/v/3")
        assert sent[-1]["body"] == b"3"
        answers.append(await driver.shutdown())
        return answers

    # Django refuses lifespan; the wrapper speaks it and flushes before shutdown.complete.
    assert asyncio.run(serve()) == [
        ("lifespan.startup.complete", 0),
        ("lifespan.shutdown.complete", 1),
    ]
    (fields,) = held.contexts().values()
    assert (fields["n"], fields["echo"], fields["http_route"]) == (3, 3, "/v/<int:n>")


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
