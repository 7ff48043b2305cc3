"""The services of the end-to-end propagation test, each served by a real server.

    gunicorn tests.propagation_services:caller        Flask: the gateway, calls the others
    uvicorn tests.propagation_services:scoring        FastAPI (service_name "scoring")
    gunicorn tests.propagation_services:features      Django (no service_name)
    gunicorn tests.propagation_services:relay         Flask with OpenTelemetry only, no Mona

Each app is built on first access (PEP 562), so a server process only imports its own
framework. Mona's options come from the environment the test gives each process
(``MONA_MIDDLEWARE_ACCEPT_INCOMING_CONTEXT``, ``..._SERVICE_NAME``, ``..._CONTEXT_CLASS``);
the caller finds the others in ``SCORING_URL``, ``FEATURES_URL`` and ``RELAY_URL``.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations
# (``Request``, imported inside the builder) at run time.
import os
from typing import Any

USER = "userId=alice"  # baggage of the caller's own, which must reach every callee


def _user(baggage: str | None) -> str | None:
    """The ``userId`` member of a ``baggage`` header, as a callee received it."""
    for member in (baggage or "").split(","):
        key, _, value = member.partition(";")[0].partition("=")
        if key.strip() == "userId":
            return value.strip()
    return None


def _fields(service: str, tag: str, baggage: str | None) -> dict[str, Any]:
    """What a callee exports for one call: the call's tag and the user its baggage named."""
    return {f"{service}_{tag}": 1, f"{service}_{tag}_user": _user(baggage)}


def _caller() -> Any:
    import asyncio

    import flask
    import httpx
    import requests

    import mona_middleware as mona
    from mona_middleware.flask import MonaFlask
    from mona_middleware.propagation import propagate

    app = flask.Flask("caller")
    MonaFlask(app)
    session = propagate(requests.Session())
    client = propagate(httpx.Client(timeout=20))
    scoring, features = os.environ["SCORING_URL"], os.environ["FEATURES_URL"]
    relay = os.environ.get("RELAY_URL")
    mine = {"baggage": USER}

    async def async_calls() -> None:
        async with propagate(httpx.AsyncClient(timeout=20)) as async_client:
            for url in (f"{scoring}/score?tag=async", f"{features}/features?tag=async"):
                (await async_client.get(url, headers=mine)).raise_for_status()

    @app.get("/fanout")
    def fanout() -> Any:
        mona.export({"caller_items": 3})
        for tag, call in (("requests", session.get), ("httpx", client.get)):
            call(f"{scoring}/score?tag={tag}", headers=mine, timeout=20).raise_for_status()
            call(f"{features}/features?tag={tag}", headers=mine, timeout=20).raise_for_status()
        asyncio.run(async_calls())
        if relay:
            session.get(f"{relay}/relay?tag=otel", headers=mine, timeout=20).raise_for_status()
        return {"context_id": mona.current_context().context_id}

    @app.get("/single")
    def single() -> Any:
        session.get(f"{scoring}/score?tag=requests", timeout=20).raise_for_status()
        return {"context_id": mona.current_context().context_id}

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


def _scoring() -> Any:
    from fastapi import FastAPI, Request

    import mona_middleware as mona
    from mona_middleware.asgi import MonaASGIMiddleware

    app = FastAPI()

    @app.get("/score")
    def score(tag: str, request: Request) -> dict[str, bool]:
        mona.export(_fields("scoring", tag, request.headers.get("baggage")))
        return {"ok": True}

    @app.get("/health")
    def health() -> str:
        return "ok"

    app.add_middleware(MonaASGIMiddleware)
    return app


def _features() -> Any:
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    settings.configure(
        SECRET_KEY="tests-only",
        DATABASES={},
        INSTALLED_APPS=[],
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["mona_middleware.django.MonaMiddleware"],
        DEBUG=False,
    )
    django.setup()
    return get_wsgi_application()


def _urlpatterns() -> list[Any]:
    from django.http import HttpResponse, JsonResponse
    from django.urls import path

    import mona_middleware as mona

    def features(request: Any) -> Any:
        tag = request.GET["tag"]
        mona.export(_fields("features", tag, request.headers.get("baggage")))
        return JsonResponse({"ok": True})

    return [path("features", features), path("health", lambda request: HttpResponse("ok"))]


def _relay() -> Any:
    """A service in between that runs only OpenTelemetry's own instrumentation."""
    import flask
    import requests
    from opentelemetry import trace
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    RequestsInstrumentor().instrument()
    app = flask.Flask("relay")
    FlaskInstrumentor().instrument_app(app)
    scoring = os.environ["SCORING_URL"]

    @app.get("/relay")
    def relay() -> Any:
        tag = flask.request.args["tag"]
        # a plain call: OpenTelemetry's propagators alone carry the baggage on
        requests.get(f"{scoring}/score?tag={tag}", timeout=20).raise_for_status()
        return {"ok": True}

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


_BUILDERS = {
    "caller": _caller,
    "scoring": _scoring,
    "features": _features,
    "relay": _relay,
    "urlpatterns": _urlpatterns,
}


def __getattr__(name: str) -> Any:
    builder = _BUILDERS.get(name)
    if builder is None:
        raise AttributeError(name)
    value = globals()[name] = builder()
    return value
