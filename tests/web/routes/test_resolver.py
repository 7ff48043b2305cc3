"""Where a framework offers no template: ``route_resolver``, or ``ROUTE_KEY`` set by the
app itself; a raw path is never recorded; a failing resolver costs the field, nothing else."""

from __future__ import annotations

import asyncio
from wsgiref.util import setup_testing_defaults

import pytest

from mona_middleware._web.routes import ROUTE_KEY
from mona_middleware.asgi import MonaASGIMiddleware
from mona_middleware.wsgi import MonaWSGIMiddleware

from .helpers import routes_seen


def wsgi_app(environ, start_response):
    if environ["PATH_INFO"].startswith("/keyed/"):
        environ[ROUTE_KEY] = "/keyed/{id}"  # what a home-grown router can do itself
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def wsgi_get(app, path: str) -> None:
    environ = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    body = app(environ, lambda status, headers, exc_info=None: None)
    b"".join(body)
    getattr(body, "close", lambda: None)()


def by_first_segment(environ_or_scope) -> str | None:
    path = environ_or_scope.get("PATH_INFO") or environ_or_scope.get("path")
    return "/" + path.split("/")[1] + "/{rest}" if path.startswith("/api/") else None


def test_wsgi_resolver_key_and_no_raw_path(memory):
    app = MonaWSGIMiddleware(wsgi_app, route_resolver=by_first_segment, handle_sigterm=False)
    for path in ("/api/users/1", "/keyed/7", "/plain/3"):
        wsgi_get(app, path)
    assert routes_seen(memory) == [
        ("GET", "-", 200),  # /plain/3: nothing knows its template
        ("GET", "/api/{rest}", 200),
        ("GET", "/keyed/{id}", 200),
    ]


async def asgi_app(scope, receive, send):
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def asgi_get(app, path: str) -> None:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    messages = [{"type": "http.request", "body": b""}]

    async def receive():
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message):
        pass

    await asyncio.wait_for(app(scope, receive, send), 10)


def failing(scope):
    raise RuntimeError("resolver bug")


@pytest.mark.parametrize(
    ("resolver", "route"),
    [(by_first_segment, "/api/{rest}"), (failing, "-"), (lambda scope: 42, "-")],
)
def test_asgi_resolver_and_its_failures(memory, resolver, route):
    app = MonaASGIMiddleware(asgi_app, route_resolver=resolver, handle_sigterm=False)
    asyncio.run(asgi_get(app, "/api/orders/9"))
    assert routes_seen(memory) == [("GET", route, 200)]


def test_a_resolver_must_be_callable():
    from mona_middleware.errors import MonaConfigError

    with pytest.raises(MonaConfigError, match="route_resolver"):
        MonaASGIMiddleware(asgi_app, route_resolver="/api", handle_sigterm=False)
