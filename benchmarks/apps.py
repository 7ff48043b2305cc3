"""One small JSON endpoint per framework, ``GET /items/<int:item_id>``, with a tool wired in.

The view is the same everywhere: read the path parameter, let the tool record the
three groups of fields, return ``{"item_id": ..., "score": ...}`` as JSON. Flask and
Django views are sync (WSGI), the Starlette view is async (ASGI). Django runs with an
empty ``MIDDLEWARE`` apart from the tool's own, so its bare cost is the framework's floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .tools import Tool

PATH_TEMPLATE = "/items/{}"


@dataclass
class BenchApp:
    """A ready app: ``kind`` is ``wsgi`` or ``asgi``; ``app`` is the server-facing callable."""

    framework: str
    kind: str
    app: Any
    tool: Tool


def build(framework: str, tool: Tool) -> BenchApp:
    tool.before_app(framework)
    builder = {"flask": _flask, "django": _django, "starlette": _starlette}[framework]
    return builder(tool)


def _flask(tool: Tool) -> BenchApp:
    import flask

    app = flask.Flask("bench")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, Any]:
        tool.record(item_id)
        return {"item_id": item_id, "score": 0.93}

    return BenchApp("flask", "wsgi", tool.flask(app), tool)


def _starlette(tool: Tool) -> BenchApp:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def item(request: Request) -> JSONResponse:
        item_id = request.path_params["item_id"]
        tool.record(item_id)
        return JSONResponse({"item_id": item_id, "score": 0.93})

    app = Starlette(
        routes=[Route("/items/{item_id:int}", item)], middleware=tool.starlette_middleware()
    )
    return BenchApp("starlette", "asgi", tool.starlette(app), tool)


def _django(tool: Tool) -> BenchApp:
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    from . import django_site

    extra = tool.django_settings()
    first = extra.pop("MIDDLEWARE_FIRST", [])
    django_site.RECORD = tool.record
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="benchmarks.django_site",
        MIDDLEWARE=[*first],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
        **extra,
    )
    tool.after_django_settings()
    django.setup()
    return BenchApp("django", "wsgi", get_wsgi_application(), tool)
