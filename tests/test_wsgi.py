"""WSGI (and Flask on top of it): the server's file wrapper survives, early closes, env
exclusions, leaks.

``served_app()`` is also the app gunicorn serves in the sendfile test
(``gunicorn 'tests.test_wsgi:served_app()'``).
"""

from __future__ import annotations

import gc
import io
import signal
import wsgiref.util
from pathlib import Path

import pytest

flask = pytest.importorskip("flask")

from werkzeug.test import Client  # noqa: E402

import mona_middleware as mona  # noqa: E402
from mona_middleware.flask import MonaFlask  # noqa: E402
from mona_middleware.wsgi import MonaWSGIMiddleware  # noqa: E402

from .servers import gunicorn, mona_env  # noqa: E402

PAYLOAD = b"model card\n" * 1000  # larger than one read of a file wrapper


class CountingFile(io.FileIO):
    """A real file that says so in the request's context whenever Python reads it:
    a body the server sent with ``sendfile()`` is never read here."""

    def read(self, size: int = -1) -> bytes:
        mona.export({"read_in_python": True})
        return super().read(size)


def payload_file(directory: Path) -> Path:
    path = directory / "card.txt"
    if not path.exists():
        path.write_bytes(PAYLOAD)
    return path


def served_app(directory: str | None = None) -> flask.Flask:
    """A Flask app with a file download, a plain WSGI one behind it, and a stream.

    ``handle_sigterm`` is off: in tests the pytest process keeps its SIGTERM, and under
    gunicorn the worker owns it anyway.
    """
    root = Path(directory or Path.cwd())
    app = flask.Flask("files")
    MonaFlask(app, context_class="FILES", excluded_urls=["^/health$"], handle_sigterm=False)

    @app.get("/card")
    def card():
        mona.export({"view": "card"})
        return flask.send_file(CountingFile(payload_file(root)), mimetype="text/plain")

    @app.get("/rows/<int:count>")
    def rows(count):
        def generate():
            for n in range(count):
                mona.export({"rows_sent": n + 1})
                yield f"row {n}\n"

        return app.response_class(generate())

    @app.get("/health")
    def health():
        mona.export({"health": "checked"})
        return "ok"

    def raw_card(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](CountingFile(payload_file(root)), 4096)

    raw = MonaWSGIMiddleware(raw_card, context_class="RAW_FILES", handle_sigterm=False)
    flask_app = app.wsgi_app

    def dispatch(environ, start_response):
        if environ["PATH_INFO"] == "/raw-card":
            return raw(environ, start_response)
        return flask_app(environ, start_response)

    app.wsgi_app = dispatch  # type: ignore[method-assign]
    return app


def contexts(memory) -> list[tuple[str, dict]]:
    assert mona.flush(5)
    return [(key[0], fields) for key, fields in memory.contexts().items()]


def test_a_file_wrapper_body_stays_the_servers_type_and_closing_it_closes_the_context(
    memory, tmp_path
):
    closed = []

    class File(CountingFile):
        def close(self):
            closed.append(True)
            super().close()

    def app(environ, start_response):
        start_response("206 Partial Content", [])
        return environ["wsgi.file_wrapper"](File(payload_file(tmp_path)), 4096)

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/f",
        "wsgi.file_wrapper": wsgiref.util.FileWrapper,
    }
    middleware = MonaWSGIMiddleware(app, handle_sigterm=False)
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    assert type(body) is wsgiref.util.FileWrapper  # what a server checks before sendfile()
    assert mona.current_context() is None  # left when the app returned
    # The server's own wrapper, read in Python: the server's code, outside the request's
    # context (a wrapper cannot be hooked per chunk without hiding it from sendfile()).
    assert b"".join(body) == PAYLOAD
    assert mona.flush(5) and memory.contexts() == {}  # open until the server closes it
    assert mona.stats()["exports_outside_context"] > 0
    body.close()
    assert closed == [True]
    ((_, fields),) = contexts(memory)
    assert fields["http_status_code"] == 206 and "read_in_python" not in fields


def test_a_wrapper_that_refuses_a_close_hook_is_wrapped_after_all(memory):
    class SlottedWrapper:
        __slots__ = ("chunks",)

        def __init__(self, filelike, size=8192):
            self.chunks = [filelike.read()]

        def __iter__(self):
            return iter(self.chunks)

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"abc"))

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/f", "wsgi.file_wrapper": SlottedWrapper}
    body = MonaWSGIMiddleware(app, handle_sigterm=False)(environ, lambda *args: None)
    assert not isinstance(body, SlottedWrapper)
    assert b"".join(body) == b"abc"
    body.close()
    assert contexts(memory)[0][1]["http_status_code"] == 200


def test_flask_send_file_keeps_the_file_wrapper_and_closes_when_closed(memory, tmp_path):
    app = served_app(str(tmp_path))
    returned = []
    monitored = app.wsgi_app

    def server_side(environ, start_response):  # what the server gets back from the app
        body = monitored(environ, start_response)
        returned.append(type(body))
        return body

    app.wsgi_app = server_side  # type: ignore[method-assign]
    overrides = {"wsgi.file_wrapper": wsgiref.util.FileWrapper}
    with app.test_client().get("/card", environ_overrides=overrides, buffered=False) as response:
        assert returned == [wsgiref.util.FileWrapper]
        assert mona.flush(5) and memory.contexts() == {}
        assert response.get_data() == PAYLOAD
    ((cls, fields),) = contexts(memory)
    assert cls == "FILES" and fields["view"] == "card" and fields["http_route"] == "/card"


def test_gunicorn_sends_files_with_sendfile_and_every_context_arrives(mona_server, tmp_path):
    import requests

    app = f"tests.test_wsgi:served_app({str(tmp_path)!r})"
    with gunicorn(app, mona_env(mona_server), workers=1) as server:
        server.wait_ready("/health")
        with requests.Session() as session:
            for path in ("/card", "/raw-card", "/card"):
                assert session.get(server.url + path, timeout=5).content == PAYLOAD
            assert session.get(server.url + "/rows/3", timeout=5).text.count("row") == 3
        assert server.stop(signal.SIGTERM) == 0, server.output
    assert mona_server.wait_for_messages(4, timeout=10)
    found = sorted(
        (key[0], fields.get("http_route"), fields.get("read_in_python", False))
        for key, fields in mona_server.contexts().items()
    )
    # read_in_python False: gunicorn sent the file itself, as it does without monitoring.
    assert found == [
        ("FILES", "/card", False),
        ("FILES", "/card", False),
        ("FILES", "/rows/<int:count>", False),
        ("RAW_FILES", None, False),
    ]


def test_an_early_close_of_a_streamed_body_closes_the_context_with_what_was_sent(memory):
    client = served_app().test_client()
    response = client.get("/rows/10", buffered=False)
    chunks = iter(response.response)
    assert [next(chunks), next(chunks)] == [b"row 0\n", b"row 1\n"]
    assert mona.flush(5) and memory.contexts() == {}
    response.close()  # the client went away: the server closes the iterable early
    ((_, fields),) = contexts(memory)
    assert fields["rows_sent"] == 2 and fields["http_status_code"] == 200
    assert "exception_type" not in fields


def test_an_early_close_of_a_plain_wsgi_generator(memory):
    finished = []

    def app(environ, start_response):
        start_response("200 OK", [])

        def rows():
            try:
                for n in range(10):
                    mona.export({"rows_sent": n + 1})
                    yield b"row"
            finally:
                finished.append(True)

        return rows()

    body = MonaWSGIMiddleware(app, handle_sigterm=False)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/rows"}, lambda *args: None
    )
    iterator = iter(body)
    assert next(iterator) == b"row"
    body.close()
    assert finished == [True]
    ((_, fields),) = contexts(memory)
    assert fields["rows_sent"] == 1 and "exception_type" not in fields


def test_excluded_urls_from_the_environment(memory, monkeypatch):
    monkeypatch.setenv("MONA_MIDDLEWARE_EXCLUDED_URLS", "^/health$, ^/rows/1$")
    client = served_app().test_client()  # its own excluded_urls argument wins over the env
    for path in ("/health", "/rows/1", "/rows/2"):
        assert client.get(path).data  # read: a streamed body closes when it has been sent
    assert sorted(f.get("http_route") for _, f in contexts(memory)) == [
        "/rows/<int:count>",
        "/rows/<int:count>",
    ]

    memory.clear()
    app = flask.Flask("from_env")
    MonaFlask(app, handle_sigterm=False)
    app.add_url_rule("/health", "health", lambda: "ok")
    app.add_url_rule("/rows/<int:count>", "rows", lambda count: str(count))

    def plain(environ, start_response):
        start_response("200 OK", [])
        return [b"plain"]

    for wsgi_app in (app, MonaWSGIMiddleware(plain, handle_sigterm=False)):
        wsgi_client = Client(wsgi_app)
        for path in ("/health", "/rows/1", "/rows/2"):
            assert wsgi_client.get(path).status_code == 200
    routes = sorted(str(f.get("http_route")) for _, f in contexts(memory))
    assert routes == ["/rows/<int:count>", "None"]


def test_an_excluded_request_does_not_export_into_a_context_a_server_leaked(memory):
    client = served_app().test_client()
    with mona.context("LEAKED", context_id="leak"):
        assert client.get("/health").data == b"ok"  # its export() finds no context
        assert mona.current_context().context_id == "leak"
        mona.export({"after": "request"})
    assert contexts(memory) == [("LEAKED", {"after": "request"})]


def only(memory, **match) -> dict:
    assert mona.flush(5)
    found = [f for f in memory.contexts().values() if all(f.get(k) == v for k, v in match.items())]
    assert len(found) == 1, memory.contexts()
    return found[0]


def test_plain_wsgi_middleware_closes_when_the_server_closes_the_iterable(memory):
    closed = []

    class Body:
        def __iter__(self):
            mona.export({"iterated": True})
            yield b"hello"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("201 Created", [("Content-Type", "text/plain")])
        return Body()

    wrapped = MonaWSGIMiddleware(app, context_class="RAW_WSGI", handle_sigterm=False)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/raw", "wsgi.input": None}
    body = wrapped(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(body) == b"hello"
    body.close()
    assert closed == [True]
    fields = only(memory, http_status_code=201)
    assert fields["iterated"] is True and fields["http_method"] == "POST"


def _streaming_app(environ, start_response):
    """A plain WSGI app whose body exports while it streams (a generator)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    mona.export({"view": "ran"})

    def rows():
        for n in range(3):
            mona.export({"rows_sent": n + 1})
            yield b"row\n"

    return rows()


ENVIRON = {"REQUEST_METHOD": "GET", "PATH_INFO": "/rows"}


def test_the_context_is_left_when_the_app_returns_and_set_around_each_chunk(memory):
    """A body not sent yet never leaves its context current in the caller's thread, while
    what the body exports as it streams still lands in its own context (Sentry's way)."""
    wrapped = MonaWSGIMiddleware(_streaming_app, context_class="ROWS", handle_sigterm=False)
    body = wrapped(dict(ENVIRON), lambda *args: None)
    assert mona.current_context() is None  # the server's (or a test's) code: no context
    assert mona.export({"outside": True}) is False
    chunks = iter(body)
    assert next(chunks) == b"row\n"
    assert mona.current_context() is None  # between chunks too
    assert b"".join(chunks) == b"row\nrow\n"
    body.close()
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "ROWS" and fields["view"] == "ran" and fields["rows_sent"] == 3
    assert "outside" not in fields and mona.stats()["contexts_closed_unclosed_body"] == 0


def test_close_runs_in_the_requests_context():
    """What the body does on close() (Flask's teardown of a streamed response) exports
    into the request's context."""
    seen = []

    class Body:
        def __iter__(self):
            yield b"x"

        def close(self):
            seen.append(mona.current_context())

    def app(environ, start_response):
        start_response("200 OK", [])
        seen.append(mona.current_context())
        return Body()

    body = MonaWSGIMiddleware(app, handle_sigterm=False)(dict(ENVIRON), lambda *args: None)
    assert list(body) == [b"x"] and mona.current_context() is None
    body.close()
    assert seen[0] is not None and seen == [seen[0], seen[0]]
    assert mona.current_context() is None


def test_two_interleaved_streams_keep_their_own_contexts(memory):
    """Chunks of two responses served alternately by one thread (an async server's
    worker) each export into their own request's context."""
    wrapped = MonaWSGIMiddleware(_streaming_app, context_class="ROWS", handle_sigterm=False)
    first = iter(wrapped(dict(ENVIRON), lambda *args: None))
    second = iter(wrapped(dict(ENVIRON), lambda *args: None))
    for _ in range(3):
        next(first)
        next(second)
    assert list(second) == [] and list(first) == []
    assert mona.flush(5)
    assert sorted(f["rows_sent"] for f in memory.contexts().values()) == [3, 3]


def test_a_body_dropped_unclosed_still_delivers_its_context_counted_apart(memory):
    wrapped = MonaWSGIMiddleware(_streaming_app, context_class="ROWS", handle_sigterm=False)
    body = wrapped(dict(ENVIRON), lambda *args: None)
    chunks = iter(body)
    assert next(chunks) == b"row\n"
    assert mona.flush(5) and memory.contexts() == {}  # still open: it may yet be sent
    del body, chunks  # a server (or a test) that neither finished nor closed it
    gc.collect()
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "ROWS" and fields["rows_sent"] == 1 and fields["http_status_code"] == 200
    assert mona.stats()["contexts_closed_unclosed_body"] == 1
    assert mona.stats()["dropped"] == {}


def test_a_file_wrapper_dropped_unclosed_still_delivers_its_context(memory, tmp_path):
    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"abc"))

    environ = {**ENVIRON, "wsgi.file_wrapper": wsgiref.util.FileWrapper}
    body = MonaWSGIMiddleware(app, handle_sigterm=False)(environ, lambda *args: None)
    assert type(body) is wsgiref.util.FileWrapper and mona.current_context() is None
    del body
    gc.collect()
    assert contexts(memory)[0][1]["http_status_code"] == 200
    assert mona.stats()["contexts_closed_unclosed_body"] == 1


def test_a_status_line_of_the_wrong_type_is_the_servers_business(memory):
    """The middleware reads the status for its field; a value it cannot read never
    fails the app's start_response (the server judges it, as without us)."""
    given = []

    def app(environ, start_response):
        start_response(b"200 OK", [])  # bytes: not what PEP 3333 allows
        return [b"ok"]

    wrapped = MonaWSGIMiddleware(app, handle_sigterm=False)
    assert wrapped(dict(ENVIRON), lambda *args: given.append(args[0])) == [b"ok"]
    assert given == [b"200 OK"]
    assert contexts(memory)[0][1]["http_method"] == "GET"
