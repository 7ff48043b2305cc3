"""``MonaFlask`` through Flask's test client: one context per request, closed when sent."""

from __future__ import annotations

import gc
import logging
import threading
import weakref

import pytest

flask = pytest.importorskip("flask")

import mona_middleware as mona  # noqa: E402
from mona_middleware.flask import MonaFlask  # noqa: E402


def make_app(*, before_request=None, **options) -> flask.Flask:
    app = flask.Flask("shop")
    app.config["MONA_CONTEXT_CLASS"] = "SHOP_API"
    if before_request is not None:  # the user's hook registered before the extension
        app.before_request(before_request)
    MonaFlask(app, handle_sigterm=False, **options)

    @app.get("/items/<int:item_id>")
    def item(item_id):
        mona.export({"item_id": item_id})
        return {"id": item_id}

    @app.get("/boom")
    def boom():
        mona.export({"before": "crash"})
        raise ValueError("model crashed")

    @app.get("/stream")
    def stream():
        def rows():
            for n in range(3):
                mona.export({"rows": n + 1})
                yield f"{n}\n"

        return app.response_class(rows())

    @app.get("/stream-fails")
    def stream_fails():
        def rows():
            yield "a"
            raise RuntimeError("mid-stream")

        return app.response_class(rows())

    @app.get("/health")
    def health():
        return "ok"

    return app


def only(memory, **match) -> dict:
    assert mona.flush(5)
    found = [f for f in memory.contexts().values() if all(f.get(k) == v for k, v in match.items())]
    assert len(found) == 1, memory.contexts()
    return found[0]


def test_request_fields_and_exports_land_in_one_context(memory):
    client = make_app().test_client()
    assert client.get("/items/7").json == {"id": 7}
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "SHOP_API" and len(key[1]) == 36
    assert fields.pop("duration_ms") > 0
    assert fields == {
        "item_id": 7,
        "http_method": "GET",
        "http_route": "/items/<int:item_id>",
        "http_status_code": 200,
    }


def test_a_view_exception_is_a_recorded_500(memory):
    client = make_app().test_client()
    assert client.get("/boom").status_code == 500
    fields = only(memory, http_route="/boom")
    assert fields["exception_type"] == "ValueError" and fields["http_status_code"] == 500
    assert fields["before"] == "crash"


def test_a_propagating_exception_is_recorded_and_unchanged(memory):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(ValueError, match="model crashed"):
        app.test_client().get("/boom")
    assert only(memory, http_route="/boom")["http_status_code"] == 500


def test_streamed_response_closes_the_context_after_the_last_chunk(memory):
    client = make_app().test_client()
    with client.get("/stream", buffered=False) as response:
        first = next(response.response)
        assert first == b"0\n"
        assert mona.flush(5) and memory.contexts() == {}  # still streaming: not sent yet
        assert b"".join(response.response) == b"1\n2\n"
    fields = only(memory, http_route="/stream")
    assert fields["rows"] == 3 and fields["http_status_code"] == 200


def test_a_stream_failing_midway_records_the_exception(memory):
    client = make_app().test_client()
    with pytest.raises(RuntimeError):
        client.get("/stream-fails").get_data()
    assert only(memory, http_route="/stream-fails")["exception_type"] == "RuntimeError"


def test_head_404_and_excluded_urls(memory):
    client = make_app(excluded_urls=["^/health$"]).test_client()
    assert client.head("/items/3").status_code == 200
    assert b"Not Found" in client.get("/nowhere").data
    assert client.get("/health").data == b"ok"
    assert mona.flush(5)
    methods = sorted((f["http_method"], f["http_status_code"]) for f in memory.contexts().values())
    assert methods == [("GET", 404), ("HEAD", 200)]
    assert all(
        "http_route" not in f for f in memory.contexts().values() if f["http_status_code"] == 404
    )


def test_options_come_from_arguments_then_app_config_then_env(memory, monkeypatch):
    monkeypatch.setenv("MONA_MIDDLEWARE_CONTEXT_CLASS", "FROM_ENV")
    app = flask.Flask("cfg")
    app.config["MONA_CAPTURE_HEADERS"] = "User-Agent, Authorization, Cookie, X-Api-Key"
    MonaFlask(app, handle_sigterm=False, field_names={"duration_ms": None, "route": "endpoint"})
    app.get("/x")(lambda: "x")
    client = app.test_client()
    client.set_cookie("session", "abc")
    client.get(
        "/x", headers={"User-Agent": "probe/1", "Authorization": "Bearer s3cr3t", "X-Api-Key": "k"}
    ).get_data()
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "FROM_ENV"
    assert fields == {
        "header_user_agent": "probe/1",
        "header_authorization": "[REDACTED]",
        "header_cookie": "[REDACTED]",
        "header_x_api_key": "[REDACTED]",
        "http_method": "GET",
        "endpoint": "/x",
        "http_status_code": 200,
    }


def test_unknown_option_fails_at_start_naming_it():
    with pytest.raises(mona.MonaConfigError, match="context_klass"):
        MonaFlask(flask.Flask("bad"), context_klass="X")


def test_hooks_and_before_send(memory):
    seen = []

    def before_send(message):
        if message["message"].get("http_route") == "/health":
            return None
        message["message"]["tenant"] = "acme"
        return message

    app = make_app(
        request_hook=lambda ctx, environ: seen.append(("request", environ["PATH_INFO"])),
        response_hook=lambda ctx, environ, status, headers: seen.append(("response", status)),
        before_send=before_send,
    )
    client = app.test_client()
    client.get("/items/1").get_data()
    client.get("/health").get_data()
    assert seen == [
        ("request", "/items/1"),
        ("response", "200 OK"),
        ("request", "/health"),
        ("response", "200 OK"),
    ]
    assert mona.flush(5)
    (fields,) = memory.contexts().values()
    assert fields["tenant"] == "acme" and fields["item_id"] == 1
    assert mona.stats()["dropped"] == {"before_send returned None": 1}


def test_a_failing_hook_never_breaks_the_request(memory, caplog):
    caplog.set_level(logging.ERROR)
    app = make_app(request_hook=lambda ctx, environ: 1 / 0)
    assert app.test_client().get("/items/2").json == {"id": 2}
    assert "raised; the request goes on" in caplog.text
    assert only(memory, item_id=2)["http_status_code"] == 200


def test_disabled_middleware_passes_requests_through(memory):
    client = make_app(enabled=False).test_client()
    assert client.get("/items/1").json == {"id": 1}
    assert mona.flush(5) and memory.messages == []


def test_context_id_from_a_request_header_when_opted_in(memory):
    client = make_app(context_id_header="X-Request-ID").test_client()
    client.get("/items/1", headers={"X-Request-ID": "req-123"}).get_data()
    assert mona.flush(5)
    assert list(memory.contexts()) == [("SHOP_API", "req-123")]


def test_five_hundred_concurrent_requests_each_keep_their_own_value(memory):
    app = flask.Flask("concurrent")
    MonaFlask(app, handle_sigterm=False)
    barrier = threading.Barrier(50, timeout=20)

    @app.get("/v/<int:n>")
    def value(n):
        mona.export({"n": n})
        if n < 50:
            barrier.wait()  # the first 50 are all inside their views at the same time
        mona.export({"echo": n})
        return str(n)

    def worker(start):
        client = app.test_client()
        for n in range(start, 500, 50):
            assert client.get(f"/v/{n}").data == str(n).encode()

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert mona.flush(10)
    contexts = list(memory.contexts().values())
    assert len(contexts) == 500
    assert all(fields["n"] == fields["echo"] for fields in contexts)
    assert sorted(fields["n"] for fields in contexts) == list(range(500))


def require_token():
    if flask.request.path.startswith("/items/") and "X-Token" not in flask.request.headers:
        return {"error": "unauthorized"}, 401  # the view never runs
    if flask.request.path == "/stream":
        flask.abort(403)  # an HTTPException from a hook, as Flask-Login's do
    return None


@pytest.mark.parametrize("hook_first", [True, False], ids=["hook-first", "extension-first"])
def test_a_before_request_answer_still_records_the_route(memory, hook_first):
    app = make_app(before_request=require_token if hook_first else None)
    if not hook_first:
        app.before_request(require_token)
    seen = []

    @app.after_request
    def note(response):  # registered after ours: Flask runs it first
        seen.append(response.status_code)
        return response

    client = app.test_client()
    assert client.get("/items/4").status_code == 401  # never read: closed at teardown
    assert client.get("/items/5", headers={"X-Token": "t"}).json == {"id": 5}
    assert client.get("/stream").data  # an error page Flask built from the exception
    assert seen == [401, 200, 403]  # after_request runs for an early answer too
    assert mona.flush(5)
    found = sorted(
        (f["http_status_code"], f["http_route"], "item_id" in f) for f in memory.contexts().values()
    )
    assert found == [
        (200, "/items/<int:item_id>", True),
        (401, "/items/<int:item_id>", False),
        (403, "/stream", False),
    ]


@pytest.mark.parametrize("propagate", [False, True], ids=["error-page", "propagated"])
def test_a_view_or_hook_exception_keeps_the_route(memory, propagate):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = propagate

    @app.before_request
    def broken_hook():
        if flask.request.path == "/items/9":
            raise KeyError("hook bug")

    client = app.test_client()
    for path in ("/boom", "/items/9"):
        if propagate:
            with pytest.raises((ValueError, KeyError)):
                client.get(path)
        else:
            assert client.get(path).status_code == 500
    assert mona.flush(5)
    found = sorted(
        (f["http_route"], f["http_status_code"], f["exception_type"])
        for f in memory.contexts().values()
    )
    assert found == [("/boom", 500, "ValueError"), ("/items/<int:item_id>", 500, "KeyError")]


def error_app() -> flask.Flask:
    app = make_app()

    @app.post("/orders")
    def orders():
        mona.export({"parsed": True})
        flask.request.get_json()  # a body that is no JSON: Flask's 400
        return {"ok": True}

    @app.get("/forbidden")
    def forbidden():
        mona.export({"checked": True})
        flask.abort(403)

    @app.get("/teapot")
    def teapot():
        flask.abort(418)

    @app.errorhandler(418)
    def handled(error):  # the user's own page: a whole body of the user's
        return "short and stout", 418

    return app


@pytest.mark.parametrize(
    ("method", "path", "status", "data"),
    [
        ("get", "/nowhere", 404, None),
        ("delete", "/items/1", 405, None),
        ("post", "/orders", 400, "not json"),
        ("get", "/forbidden", 403, None),
        ("get", "/teapot", 418, None),
    ],
)
def test_an_error_page_closes_its_context_without_the_body_being_read(
    memory, method, path, status, data
):
    """Flask renders an HTTPException as a WSGI app's body (it looks streamed); the test
    client never closes a body nobody reads. The context is whole all the same: sent at
    teardown, and never left current in the caller's thread."""
    client = error_app().test_client()
    kwargs = {} if data is None else {"data": data, "content_type": "application/json"}
    response = getattr(client, method)(path, **kwargs)  # the body is not read
    assert response.status_code == status
    assert mona.current_context() is None
    assert mona.export({"after": "the request"}) is False  # lands in no request's context
    fields = only(memory, http_status_code=status)
    assert fields["http_method"] == method.upper() and "after" not in fields
    if status in (400, 403):
        assert fields["http_route"] == path and "exception_type" not in fields
    response.close()
    assert mona.flush(5) and len(memory.contexts()) == 1  # closing it later sends nothing again
    assert mona.stats()["contexts_closed_unclosed_body"] == 0


def test_a_streamed_response_left_unread_is_not_current_and_is_sent_when_dropped(memory):
    client = make_app().test_client()
    response = client.get("/stream", buffered=False)
    assert mona.current_context() is None
    assert mona.flush(5) and memory.contexts() == {}  # it may still be sent
    del response
    gc.collect()
    fields = only(memory, http_route="/stream")
    assert fields["http_status_code"] == 200
    assert mona.stats()["contexts_closed_unclosed_body"] == 1


def test_an_app_is_freed_as_soon_as_nothing_holds_it():
    """Flask's own test_app_freed_on_zero_refcount, with the extension added: no cycle
    through the middleware, so CPython frees the app by reference counting alone."""
    gc.disable()
    try:
        app = flask.Flask("freed")
        MonaFlask(app, handle_sigterm=False)
        assert app.view_functions["static"]
        weak = weakref.ref(app)
        assert weak() is not None
        del app
        assert weak() is None
    finally:
        gc.enable()


def test_an_app_used_for_requests_is_freed_too(memory):
    """(Not after a 404: Flask's routing exception, traceback and frames make a cycle of
    Flask's own, with or without the extension.)"""
    gc.disable()
    try:
        app = flask.Flask("freed")
        MonaFlask(app, handle_sigterm=False)
        app.add_url_rule("/items/<int:n>", "item", lambda n: {"id": n})
        app.add_url_rule("/stream", "stream", lambda: flask.Response(iter([b"0", b"1"])))
        client = app.test_client()
        assert client.get("/items/1").json == {"id": 1}
        assert client.get("/stream").data == b"01"
        weak = weakref.ref(app)
        del app, client
        assert weak() is None
    finally:
        gc.enable()
    assert mona.flush(5) and len(memory.contexts()) == 2


def test_a_wsgi_app_wrapped_before_the_extension_is_kept(memory):
    """ProxyFix (or any middleware) put on app.wsgi_app first stays in the chain."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    app = flask.Flask("proxied")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    MonaFlask(app, handle_sigterm=False)
    app.add_url_rule("/ip", "ip", lambda: flask.request.remote_addr)
    response = app.test_client().get("/ip", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.data == b"203.0.113.7"
    assert only(memory, http_route="/ip")["http_status_code"] == 200
