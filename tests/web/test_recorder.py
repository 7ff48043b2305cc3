"""Captured headers: credentials are always redacted, ``redact_headers`` only adds to that.

Each adapter is driven through its own framework's test client; Django's lives in
``tests/django/test_middleware.py`` (it needs the Django settings fixture).
"""

from __future__ import annotations

import re
import warnings

import pytest

import mona_middleware as mona
from mona_middleware._web.recorder import WebRecorder, redacted

# Real-world credential headers; each must come out "[REDACTED]" with no option set.
CREDENTIALS = [
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Cookie",
    "Set-Cookie",
    "X-Auth",
    "X-Auth-Token",
    "X-Authentication",
    "X-Api-Key",
    "Api-Key",
    "X-Access-Key",
    "Ocp-Apim-Subscription-Key",
    "X-Amz-Security-Token",
    "X-CSRFToken",
    "X-CSRF-Token",
    "X-XSRF-TOKEN",
    "X-Hub-Signature-256",
    "Stripe-Signature",
    "X-Goog-Iap-Jwt-Assertion",
    "X-Vault-Token",
    "Private-Token",
    "X-Shopify-Access-Token",
    "X-Client-Secret",
    "X-Session-Id",
    "X-Password",
    "X-Ms-Client-Credentials",
]


# Ordinary headers that must stay readable.
VISIBLE = [
    "User-Agent",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Content-Type",
    "Content-Length",
    "Cache-Control",
    "Host",
    "Origin",
    "Referer",
    "Traceparent",
    "X-Request-Id",
    "X-Correlation-Id",
    "X-Forwarded-For",
    "X-Model-Version",
]


@pytest.mark.parametrize("name", CREDENTIALS)
def test_credential_headers_are_redacted_by_default(name):
    assert redacted(name.lower())


@pytest.mark.parametrize("name", VISIBLE)
def test_ordinary_headers_stay_visible(name):
    assert not redacted(name.lower())


def captured(headers: dict[str, str], **options) -> dict:
    """What ``WebRecorder.headers`` records for ``headers`` with ``capture_headers`` = all."""
    lowered = {name.lower(): value for name, value in headers.items()}
    monitor = WebRecorder({"handle_sigterm": False, "capture_headers": list(headers), **options})
    return monitor.headers(lowered.get)


def test_every_captured_credential_is_redacted_and_the_rest_kept():
    headers = {name: f"value-of-{name}" for name in CREDENTIALS + VISIBLE}
    fields = captured(headers)
    for name in CREDENTIALS:
        assert fields["header_" + name.lower().replace("-", "_")] == "[REDACTED]"
    for name in VISIBLE:
        assert fields["header_" + name.lower().replace("-", "_")] == f"value-of-{name}"


@pytest.mark.parametrize(
    "extra",
    ["x-internal", "X-INTERNAL", re.compile("X-Internal"), ["^x-internal$", "tenant"]],
    ids=["str", "upper", "compiled", "list"],
)
def test_redact_headers_adds_to_the_default_case_insensitively(extra):
    headers = {"Authorization": "Bearer s3cr3t", "X-Internal": "hidden", "Accept": "*/*"}
    assert captured(headers, redact_headers=extra) == {
        "header_authorization": "[REDACTED]",  # the default still applies
        "header_x_internal": "[REDACTED]",
        "header_accept": "*/*",
    }


SENT = {
    "Authorization": "Bearer s3cr3t",
    "X-Internal": "hidden",
    "X-Request-Id": "req-9",
    "Content-Type": "application/json",
}


EXPECTED = {
    "header_authorization": "[REDACTED]",
    "header_x_internal": "[REDACTED]",
    "header_x_request_id": "req-9",
    "header_content_type": "application/json",
    "header_content_length": "11",  # PEP 3333 keeps these two out of HTTP_*: still found
}


OPTIONS = {
    "capture_headers": "Authorization, X-Internal, X-Request-Id, Content-Type, Content-Length",
    "redact_headers": "x-internal",
    "handle_sigterm": False,
}


def request_fields(memory) -> dict:
    assert mona.flush(5)
    ((_, fields),) = memory.contexts().items()
    return {key: value for key, value in fields.items() if key.startswith("header_")}


def test_flask_captures_content_headers_and_redacts_both_patterns(memory):
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask

    app = flask.Flask("headers")
    app.config["MONA_REDACT_HEADERS"] = "ignored: the argument wins"
    MonaFlask(app, **OPTIONS)
    app.post("/score")(lambda: "ok")
    assert app.test_client().post("/score", data=b'{"items":1}', headers=SENT).data == b"ok"
    assert request_fields(memory) == EXPECTED


def test_plain_wsgi_captures_content_headers(memory):
    werkzeug_test = pytest.importorskip("werkzeug.test")
    from mona_middleware.wsgi import MonaWSGIMiddleware

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))]

    client = werkzeug_test.Client(MonaWSGIMiddleware(app, **OPTIONS))
    assert client.post("/score", data=b'{"items":1}', headers=SENT).data == b'{"items":1}'
    assert request_fields(memory) == EXPECTED


def test_asgi_captures_content_headers_and_redacts_both_patterns(memory):
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from mona_middleware.asgi import MonaASGIMiddleware

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    async def score(request):
        return PlainTextResponse(await request.body())

    app = MonaASGIMiddleware(
        Starlette(routes=[Route("/score", score, methods=["POST"])]), **OPTIONS
    )
    assert TestClient(app).post("/score", content=b'{"items":1}', headers=SENT).status_code == 200
    assert request_fields(memory) == EXPECTED


# -- accept_incoming_context: one recorder for every adapter ---------------------------

CALLER = "userId=alice,mona.context_class=GATEWAY,mona.context_id=req-1"


def _incoming_apps(**options):
    """The same endpoint behind the WSGI, Flask and ASGI adapters: exports ``score``."""
    werkzeug_test = pytest.importorskip("werkzeug.test")
    flask = pytest.importorskip("flask")
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from mona_middleware.asgi import MonaASGIMiddleware
    from mona_middleware.flask import MonaFlask
    from mona_middleware.wsgi import MonaWSGIMiddleware

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    options = {"handle_sigterm": False, "context_class": "CALLEE", **options}

    def wsgi_app(environ, start_response):
        mona.export({"score": 1})
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    flask_app = flask.Flask("callee")
    MonaFlask(flask_app, **options)

    @flask_app.get("/score")
    def flask_score():
        mona.export({"score": 2})
        return "ok"

    async def asgi_score(request):
        mona.export({"score": 3})
        return PlainTextResponse("ok")

    asgi_app = MonaASGIMiddleware(Starlette(routes=[Route("/score", asgi_score)]), **options)
    wsgi = werkzeug_test.Client(MonaWSGIMiddleware(wsgi_app, **options))
    return [
        lambda headers: wsgi.get("/score", headers=headers).status_code,
        lambda headers: flask_app.test_client().get("/score", headers=headers).status_code,
        lambda headers: TestClient(asgi_app).get("/score", headers=headers).status_code,
    ]


def test_incoming_context_is_off_by_default_every_request_has_its_own(memory):
    for call in _incoming_apps():
        assert call({"baggage": CALLER}) == 200
    assert mona.flush(5)
    keys = sorted(memory.contexts())
    assert [cls for cls, _ in keys] == ["CALLEE"] * 3
    assert len({context_id for _, context_id in keys}) == 3


def test_accepted_incoming_context_continues_the_callers_without_its_request_fields(memory):
    for call in _incoming_apps(accept_incoming_context=True):
        assert call({"baggage": CALLER}) == 200
    assert mona.flush(5)
    # the callee's own request fields would overwrite the caller's: left out
    assert memory.contexts() == {("GATEWAY", "req-1"): {"score": 3}}
    assert len(memory.messages) == 3


def test_with_a_service_name_the_callees_request_fields_go_under_its_prefix(memory):
    apps = _incoming_apps(
        accept_incoming_context=True, service_name="features", capture_headers=["x-tenant"]
    )
    for call in apps:
        assert call({"baggage": CALLER, "X-Tenant": "acme"}) == 200
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key == ("GATEWAY", "req-1")
    assert fields.pop("features_duration_ms") >= 0
    assert fields == {
        "score": 3,
        "features_http_method": "GET",
        "features_http_route": "/score",
        "features_http_status_code": 200,
        "features_header_x_tenant": "acme",
    }


def test_a_bad_incoming_context_is_ignored_counted_and_gets_its_own(memory):
    calls = _incoming_apps(accept_incoming_context=True)
    bad = "mona.context_class=GATEWAY,mona.context_id=a%0Ab"
    for call in calls:
        assert call({"baggage": bad}) == 200
        assert call({"baggage": "userId=alice"}) == 200  # no context in it: not counted
    assert mona.flush(5)
    assert mona.stats()["incoming_contexts_ignored"] == 3
    contexts = memory.contexts()
    assert len(contexts) == 6 and {cls for cls, _ in contexts} == {"CALLEE"}
    assert all(fields["http_method"] == "GET" for fields in contexts.values())


def test_an_incoming_context_wins_over_context_id_header(memory):
    (wsgi, *_) = _incoming_apps(accept_incoming_context=True, context_id_header="X-Request-Id")
    assert wsgi({"baggage": CALLER, "X-Request-Id": "mine"}) == 200
    assert wsgi({"X-Request-Id": "mine"}) == 200
    assert mona.flush(5)
    assert sorted(memory.contexts()) == [("CALLEE", "mine"), ("GATEWAY", "req-1")]


def test_the_options_come_from_the_environment_and_service_name_is_checked(monkeypatch):
    from mona_middleware._web.options import WebOptions
    from mona_middleware.errors import MonaConfigError

    monkeypatch.setenv("MONA_MIDDLEWARE_ACCEPT_INCOMING_CONTEXT", "true")
    monkeypatch.setenv("MONA_MIDDLEWARE_SERVICE_NAME", "model_2")
    options = WebOptions.resolve({})
    assert options.accept_incoming_context is True and options.service_name == "model_2"
    assert WebOptions.resolve({}, env={}).accept_incoming_context is False
    with pytest.raises(MonaConfigError, match="service_name"):
        WebOptions.resolve({"service_name": "my service"})


# -- OpenTelemetry: trace_id, and the trace id as the context id -----------------------


def _otel():
    """A tracer provider of its own (the global one can be set once per process) and the
    spans it finished."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    spans = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(spans))
    return provider, spans


def _server_trace_ids(spans) -> set[str]:
    return {
        f"{span.context.trace_id:032x}"
        for span in spans.get_finished_spans()
        if span.kind.name == "SERVER"
    }


@pytest.mark.parametrize("from_trace", [False, True])
def test_asgi_under_opentelemetry_records_the_spans_trace_id(memory, from_trace):
    pytest.importorskip("opentelemetry.instrumentation.asgi")
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from mona_middleware.asgi import MonaASGIMiddleware

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    provider, spans = _otel()

    async def score(request):
        mona.export({"score": 1})
        return PlainTextResponse("ok")

    app = MonaASGIMiddleware(
        Starlette(routes=[Route("/score", score)]),
        handle_sigterm=False,
        context_id_from_trace=from_trace,
    )
    client = TestClient(OpenTelemetryMiddleware(app, tracer_provider=provider))
    assert client.get("/score").status_code == 200
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    (trace_id,) = _server_trace_ids(spans)
    assert fields["trace_id"] == trace_id
    assert (key[1] == trace_id) is from_trace


def test_flask_under_opentelemetrys_instrumentation_records_the_spans_trace_id(memory):
    pytest.importorskip("opentelemetry.instrumentation.flask")
    import flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    from mona_middleware.flask import MonaFlask

    provider, spans = _otel()
    app = flask.Flask("traced")
    MonaFlask(app, handle_sigterm=False)
    FlaskInstrumentor.instrument_app(app, tracer_provider=provider)
    app.get("/score")(lambda: "ok")
    try:
        assert app.test_client().get("/score").status_code == 200
    finally:
        FlaskInstrumentor.uninstrument_app(app)
    assert mona.flush(5)
    ((_, fields),) = memory.contexts().items()
    assert {fields["trace_id"]} == _server_trace_ids(spans)


def test_trace_id_can_be_renamed_or_dropped_like_any_request_field(memory):
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    werkzeug_test = pytest.importorskip("werkzeug.test")
    from mona_middleware.wsgi import MonaWSGIMiddleware

    tracer = sdk_trace.TracerProvider().get_tracer("tests")

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    for names in ({"trace_id": "otel_trace"}, {"trace_id": None}):
        client = werkzeug_test.Client(
            MonaWSGIMiddleware(app, handle_sigterm=False, field_names=names)
        )
        with tracer.start_as_current_span("request"):
            assert client.get("/").status_code == 200
    assert mona.flush(5)
    keys = sorted(tuple(sorted(k for k in f if "trace" in k)) for f in memory.contexts().values())
    assert keys == [(), ("otel_trace",)]


# -- flush_after_request: serverless web apps -----------------------------------------


def _rest_without_interval(server):
    from tests.conftest import rest_options

    return rest_options(server, flush_interval=600)  # only a flush sends anything


def test_flush_after_request_delivers_a_wsgi_requests_context_before_it_returns(mona_server):
    from mona_middleware.wsgi import MonaWSGIMiddleware

    def view(environ, start_response):
        mona.export({"order": 3})
        start_response("200 OK", [])
        return [b"ok"]

    app = MonaWSGIMiddleware(
        view, flush_after_request=True, handle_sigterm=False, **_rest_without_interval(mona_server)
    )
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/orders"}
    assert b"".join(app(environ, lambda *args: None)) == b"ok"
    ((_, fields),) = mona_server.contexts().items()
    assert fields["order"] == 3 and fields["http_method"] == "POST"


def test_flush_after_request_delivers_an_asgi_requests_context_before_it_returns(mona_server):
    import asyncio

    from mona_middleware.asgi import MonaASGIMiddleware

    async def app(scope, receive, send):
        mona.export({"order": 4})
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = MonaASGIMiddleware(
        app, flush_after_request=True, **_rest_without_interval(mona_server)
    )
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/orders", "headers": []}
    asyncio.run(middleware(scope, receive, send))
    ((_, fields),) = mona_server.contexts().items()
    assert fields["order"] == 4 and fields["http_status_code"] == 201


def test_flush_after_request_is_off_by_default_and_read_from_the_environment(monkeypatch):
    assert WebRecorder({"handle_sigterm": False}).flush_after is False
    monkeypatch.setenv("MONA_MIDDLEWARE_FLUSH_AFTER_REQUEST", "true")
    assert WebRecorder({"handle_sigterm": False}).flush_after is True


BAD_IDS = {
    "ESC": "req\x1b[2J",
    "tab": "a\tb",
    "too long": "r" * 257,
    "space": "two words",
}
# What HTTP clients refuse to send, and a raw socket need not.
RAW_BAD_IDS = {"newline": "r\nX-Admin: 1", "non-ASCII": "r\u00e9q", "NUL": "a\x00b"}


def test_a_bad_context_id_header_is_ignored_counted_and_logged_by_reason(memory, caplog):
    """Any client can send the header: the value passes the rule incoming baggage ids
    pass, or the request gets a new id (counted, logged by reason, never by value)."""
    from mona_middleware.wsgi import MonaWSGIMiddleware

    for n, call in enumerate(_incoming_apps(context_id_header="X-Request-Id")):
        assert call({"X-Request-Id": f"good-{n}"}) == 200
        for value in BAD_IDS.values():
            assert call({"X-Request-Id": value}) == 200

    def plain(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    raw = MonaWSGIMiddleware(plain, context_id_header="X-Request-Id", handle_sigterm=False)
    for value in RAW_BAD_IDS.values():
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_REQUEST_ID": value}
        assert raw(environ, lambda *args: None) == [b"ok"]
    assert mona.flush(5)
    contexts = memory.contexts()
    ids = [context_id for _, context_id in contexts]
    assert {"good-0", "good-1", "good-2"} <= set(ids)
    fresh = [i for i in ids if not i.startswith("good-")]
    assert len(fresh) == len(contexts) - 3 and all(len(i) == 36 for i in fresh)  # new UUIDs
    ignored = mona.stats()["context_id_headers_ignored"]
    assert ignored == len(contexts) - 3 == 3 * len(BAD_IDS) + len(RAW_BAD_IDS)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "context_id_header value ignored (holds a control character)" in logged
    assert "context_id_header value ignored (longer than 256 characters)" in logged
    values = [*BAD_IDS.values(), *RAW_BAD_IDS.values()]
    assert not any(value in logged for value in values) and "X-Admin" not in logged
