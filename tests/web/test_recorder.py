"""Captured headers: credentials are always redacted, ``redact_headers`` only adds to that.

Each adapter is driven through its own framework's test client; Django's lives in
``tests/django/test_middleware.py`` (it needs the Django settings fixture).
"""

from __future__ import annotations

import re
import warnings

import pytest

import mona_middleware as mona
from mona_middleware._web.recorder import WebMonitor, redacted

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
    """What ``WebMonitor.headers`` records for ``headers`` with ``capture_headers`` = all."""
    lowered = {name.lower(): value for name, value in headers.items()}
    monitor = WebMonitor({"handle_sigterm": False, "capture_headers": list(headers), **options})
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
    assert WebMonitor({"handle_sigterm": False}).flush_after is False
    monkeypatch.setenv("MONA_MIDDLEWARE_FLUSH_AFTER_REQUEST", "true")
    assert WebMonitor({"handle_sigterm": False}).flush_after is True
