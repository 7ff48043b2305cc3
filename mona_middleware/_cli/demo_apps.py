"""The apps ``mona-middleware demo`` serves: a model-serving endpoint in each framework.

They ship inside the package, so the demo runs from any install (a wheel from the
package index or ``python -m build``, not only a clone); the repository's
``example_apps/`` holds the same apps as files to read and copy. Serve one with

    PORT=8000 python -m mona_middleware._cli.demo_apps flask|django|starlette|fastapi

on 127.0.0.1; each imports its framework only when asked for it, and flushes what it
holds when stopped with SIGTERM (as under an orchestrator). Every app answers:

- ``POST /predict``: exports ``model_version``, ``item_count``, ``user_segment`` and,
  deep in the "model", ``score``;
- ``GET /items/<n>``: exports ``item_id``;
- ``GET /stream``: three rows, ``rows_streamed`` exported as each is sent;
- ``GET /fail``: raises, a deliberate 500 recorded with ``exception_type``;
- ``GET /health``: excluded from monitoring (``excluded_urls``), for readiness checks.

Any other path is a 404, recorded like any request. Django adds ``/apredict`` (an async
view, its own class) and Starlette ``/tenants/<tenant>/model`` (a Mount's template).
"""

from __future__ import annotations

import json
import os
import random
import sys
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import mona_middleware as mona

MODEL_VERSION = "2026.11-b"
CONTEXT_CLASS = "RECOMMENDATIONS"
EXCLUDED_URLS = "^/health$"
FRAMEWORKS = ("flask", "django", "starlette", "fastapi")


def score(items: list[int]) -> float:
    """The "model": deep in the code, ``export()`` finds the request's context by itself."""
    value = round(sum(items) / (len(items) * 100 or 1), 4)
    mona.export({"score": value})
    return value


def _prediction(payload: dict[str, Any]) -> dict[str, Any]:
    items = [int(n) for n in payload.get("items") or []] or [random.randint(1, 100)]
    mona.export(
        {
            "model_version": MODEL_VERSION,
            "item_count": len(items),
            "user_segment": str(payload.get("segment", "unknown")),
        }
    )
    return {"score": score(items), "model_version": MODEL_VERSION}


def _rows() -> Iterator[str]:
    for n in range(3):
        mona.export({"rows_streamed": n + 1})
        yield f"row {n}\n"


async def _async_rows() -> AsyncIterator[str]:
    for row in _rows():
        yield row


def flask_app() -> Any:
    """Flask, options from ``app.config``."""
    from flask import Flask, jsonify, request

    from mona_middleware.flask import MonaFlask

    app = Flask("mona_demo")
    app.config["MONA_CONTEXT_CLASS"] = CONTEXT_CLASS
    app.config["MONA_EXCLUDED_URLS"] = EXCLUDED_URLS
    MonaFlask(app)

    @app.post("/predict")
    def predict() -> Any:
        return jsonify(_prediction(request.get_json(silent=True) or {}))

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        mona.export({"item_id": item_id})
        return jsonify(id=item_id)

    @app.get("/stream")
    def stream() -> Any:
        return app.response_class(_rows(), mimetype="text/plain")

    @app.get("/fail")
    def fail() -> Any:
        raise RuntimeError("model crashed (on purpose: the demo's 500)")

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


def starlette_app() -> Any:
    """Starlette, the ASGI middleware; a sync endpoint runs in the thread pool."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Mount, Route

    from mona_middleware.asgi import MonaASGIMiddleware

    async def predict(request: Request) -> JSONResponse:
        payload = await request.json() if await request.body() else {}
        return JSONResponse(_prediction(payload))

    def item(request: Request) -> JSONResponse:
        mona.export({"item_id": request.path_params["item_id"]})
        return JSONResponse({"id": request.path_params["item_id"]})

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(_async_rows(), media_type="text/plain")

    async def fail(request: Request) -> None:
        raise RuntimeError("model crashed (on purpose: the demo's 500)")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def tenant_model(request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        mona.export({"tenant": tenant, "model_version": MODEL_VERSION})
        return JSONResponse({"tenant": tenant})

    # (the ignores: see tests/typing, Starlette's middleware factory and ``app=``)
    middleware = Middleware(
        MonaASGIMiddleware,  # type: ignore[arg-type]
        context_class=CONTEXT_CLASS,
        excluded_urls=EXCLUDED_URLS,
    )
    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/items/{item_id:int}", item),
        Route("/stream", stream),
        Route("/fail", fail),
        Route("/health", health),
        Mount("/tenants/{tenant}", routes=[Route("/model", tenant_model)]),
    ]
    return Starlette(routes=routes, middleware=[middleware])


def fastapi_app() -> Any:
    """FastAPI: ``@mona.monitor`` gives ``/predict`` a class of its own."""
    from fastapi import Body, FastAPI
    from fastapi.responses import PlainTextResponse, StreamingResponse

    from mona_middleware.asgi import MonaASGIMiddleware

    app = FastAPI(title="mona demo")
    app.add_middleware(
        MonaASGIMiddleware,  # type: ignore[arg-type]  # see starlette_app()
        context_class=CONTEXT_CLASS,
        excluded_urls=EXCLUDED_URLS,
    )

    # Annotations are strings here (``from __future__ import annotations``) that FastAPI
    # resolves in the module: builtins only, the body as a plain dict.
    @app.post("/predict")
    @mona.monitor("PREDICTIONS", fields={"model_family": "ranker"})
    async def predict(payload: dict = Body(default_factory=dict)) -> dict:  # noqa: B008
        return _prediction(payload)

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        mona.export({"item_id": item_id})
        return {"id": item_id}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(_async_rows(), media_type="text/plain")

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("model crashed (on purpose: the demo's 500)")

    @app.get("/health", response_class=PlainTextResponse)
    async def health() -> str:
        return "ok"

    return app


def django_app() -> Any:
    """Django in one module: settings, views and URLs; returns the WSGI application."""
    import django
    from django.conf import settings

    urls = _django_urls()
    if not settings.configured:
        settings.configure(
            SECRET_KEY="mona-demo-only",
            DEBUG=False,
            ALLOWED_HOSTS=["127.0.0.1", "localhost"],
            INSTALLED_APPS=["mona_middleware.django"],  # its system checks
            MIDDLEWARE=["mona_middleware.django.MonaMiddleware"],
            ROOT_URLCONF=urls,
            DATABASES={},
            USE_TZ=True,
            MONA={"context_class": CONTEXT_CLASS, "excluded_urls": [EXCLUDED_URLS]},
        )
    django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _django_urls() -> types.ModuleType:
    """The demo's views and their URLs, as the module Django's ``ROOT_URLCONF`` names."""
    from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
    from django.urls import path
    from django.utils.decorators import method_decorator
    from django.views import View

    def predict(request: HttpRequest) -> JsonResponse:
        return JsonResponse(_prediction(json.loads(request.body) if request.body else {}))

    @method_decorator(mona.monitor("ITEM_LOOKUP", fields={"model_version": MODEL_VERSION}), "get")
    class ItemView(View):
        def get(self, request: HttpRequest, item_id: int) -> JsonResponse:
            mona.export({"item_id": item_id, "item_count": 1})
            return JsonResponse({"id": item_id, "score": score([item_id])})

    @mona.monitor("ASYNC_RECOMMENDATIONS")
    async def predict_async(request: HttpRequest) -> JsonResponse:
        items = [int(n) for n in request.GET.get("items", "1,2,3").split(",") if n]
        return JsonResponse(_prediction({"items": items}))

    def stream(request: HttpRequest) -> StreamingHttpResponse:
        mona.export({"model_version": MODEL_VERSION})
        return StreamingHttpResponse(_rows(), content_type="text/plain")

    def fail(request: HttpRequest) -> HttpResponse:
        mona.export({"model_version": MODEL_VERSION})
        raise RuntimeError("model crashed (on purpose: the demo's 500)")

    def health(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    urls = types.ModuleType("mona_demo_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("predict", predict),
        path("items/<int:item_id>", ItemView.as_view()),
        path("apredict", predict_async),
        path("stream", stream),
        path("fail", fail),
        path("health", health),
    ]
    return urls


APPS: dict[str, Callable[[], Any]] = {
    "flask": flask_app,
    "django": django_app,
    "starlette": starlette_app,
    "fastapi": fastapi_app,
}


def serve(framework: str, port: int) -> None:
    """Serve ``framework``'s app on 127.0.0.1:``port`` until SIGTERM or Ctrl-C."""
    if framework == "flask":  # the Flask dev server (werkzeug), as `python app.py`
        flask_app().run(host="127.0.0.1", port=port)
    elif framework == "django":
        django_app()
        from django.core.management import execute_from_command_line

        execute_from_command_line(["demo", "runserver", "--noreload", f"127.0.0.1:{port}"])
    else:
        import uvicorn

        app = APPS[framework]()
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in APPS:
        print(
            f"usage: python -m mona_middleware._cli.demo_apps {'|'.join(FRAMEWORKS)}",
            file=sys.stderr,
        )
        return 2
    serve(argv[0], int(os.environ.get("PORT", "8000")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
