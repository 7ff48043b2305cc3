"""The aiohttp app the tests serve: plain, raised-status, failing, streamed and sub-app routes.

Run as a script (``python aiohttp_app.py``), it serves on 127.0.0.1:$PORT with
``web.run_app``, which runs the app's cleanup (and so the flush) at SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

if __name__ == "__main__":  # a script: this checkout first on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mona_middleware as mona
import mona_middleware.aiohttp


async def item(request: web.Request) -> web.Response:
    item_id = int(request.match_info["item_id"])
    mona.export({"item_id": item_id})
    return web.json_response({"id": item_id})


async def predict(request: web.Request) -> web.Response:
    body = await request.json()

    async def score() -> None:  # a sub-task: it inherits the request's context
        mona.export({"score": sum(body["items"])})

    await asyncio.create_task(score())
    mona.export({"item_count": len(body["items"])})
    return web.json_response({"ok": True})


async def boom(request: web.Request) -> web.Response:
    mona.export({"before": "crash"})
    raise ValueError("model crashed")


async def missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(text="no such model")


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for n in range(3):
        mona.export({"rows": n + 1})
        await response.write(f"row {n}\n".encode())
    await response.write_eof()
    return response


async def health(request: web.Request) -> web.Response:
    return web.Response(text=f"ok {mona.current_context()}")


async def private(request: web.Request) -> web.Response:
    return web.Response(text="secret")


async def user(request: web.Request) -> web.Response:
    mona.export({"user": request.match_info["name"]})
    return web.Response(text="user")


@web.middleware
async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
    """The user's own middleware: it answers 401 before the handler runs."""
    if request.path == "/private":
        return web.Response(status=401, text="who are you")
    return await handler(request)


def make_app(**options: Any) -> web.Application:
    app = web.Application(middlewares=[auth])
    app.router.add_get("/items/{item_id:\\d+}", item)
    app.router.add_post("/predict", predict)
    app.router.add_get("/boom", boom)
    app.router.add_get("/missing", missing)
    app.router.add_get("/stream", stream)
    app.router.add_get("/health", health)
    app.router.add_get("/private", private)
    admin = web.Application()
    admin.router.add_get("/users/{name}", user)
    app.add_subapp("/admin", admin)
    options.setdefault("context_class", "AIOHTTP_API")
    options.setdefault("excluded_urls", ["^/health$"])
    mona_middleware.aiohttp.instrument(app, **options)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(os.environ["PORT"]), print=None)
