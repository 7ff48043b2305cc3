"""The Starlette app the ASGI tests drive: every kind of route, mounted and hosted ones too."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Host, Mount, Route, WebSocketRoute

import mona_middleware as mona
from mona_middleware.asgi import MonaASGIMiddleware


def item(request):
    mona.export({"item_id": request.path_params["item_id"]})
    return JSONResponse({"id": request.path_params["item_id"]})


async def boom(request):
    mona.export({"before": "crash"})
    raise ValueError("model crashed")


async def missing(request):
    raise HTTPException(404, "no such model")


async def stream(request):
    async def rows():
        for n in range(3):
            mona.export({"rows": n + 1})
            yield f"{n}\n"

    return StreamingResponse(rows())


async def stream_fails(request):
    async def rows():
        yield "a"
        raise RuntimeError("mid-stream")

    return StreamingResponse(rows())


async def with_background(request):
    async def after():
        await asyncio.sleep(0.3)  # makes the post-response work measurable, not a sync
        mona.export({"background": "done"})

    mona.export({"view": "ran"})
    return PlainTextResponse("ok", background=BackgroundTask(after))


async def tenant_item(request):
    mona.export({"tenant": request.path_params["tenant"]})
    return PlainTextResponse("ok")


async def raw_static(scope, receive, send):
    await PlainTextResponse("static")(scope, receive, send)


async def echo(websocket):
    await websocket.accept()
    await websocket.send_json({"context": repr(mona.current_context())})
    await websocket.close()


ROUTES = [
    Route("/items/{item_id:int}", item),
    Route("/boom", boom),
    Route("/missing", missing),
    Route("/stream", stream),
    Route("/stream-fails", stream_fails),
    Route("/background", with_background),
    Route("/health", lambda request: PlainTextResponse("ok")),
    Mount(
        "/tenants/{tenant}",
        routes=[
            Route("/items", tenant_item),
            Mount("/v2", routes=[Route("/items/{item_id:int}", item)]),
        ],
    ),
    Mount("/static", app=raw_static),
    Host("api.example.com", app=Starlette(routes=[Route("/hosted/{item_id:int}", item)])),
    WebSocketRoute("/ws", echo),
]


def make_app(**options) -> Starlette:
    options = {"context_class": "SHOP_API", "handle_sigterm": False, **options}
    return Starlette(routes=ROUTES, middleware=[Middleware(MonaASGIMiddleware, **options)])


def routes_seen(memory) -> list:
    assert mona.flush(5)
    return sorted(
        (f["http_method"], f.get("http_route", "-"), f["http_status_code"])
        for f in memory.contexts().values()
    )
