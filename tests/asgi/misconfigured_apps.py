"""Apps the server tests start with a mistake in them (``uvicorn tests.asgi.misconfigured_apps:X``).

``no_database``: its start-up fails once it has read ``lifespan.startup`` (its database is
unreachable): with our middleware around it, a server that requires lifespan must still
refuse to start it. ``typo_fastapi`` / ``typo_starlette``: a misspelt option given to
``add_middleware``; the framework builds the middleware on its first call, where the
error must not fail requests.
"""

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import mona_middleware as mona
from mona_middleware.asgi import MonaASGIMiddleware


async def _no_database(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise ConnectionError("database unreachable")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


no_database = MonaASGIMiddleware(_no_database)

typo_fastapi = FastAPI()


@typo_fastapi.get("/items/{item_id}")
async def item(item_id: int) -> dict:
    mona.export({"item_id": item_id})  # unmonitored: outside any context, refused quietly
    return {"id": item_id}


typo_fastapi.add_middleware(MonaASGIMiddleware, contextclass="SHOP_API")


async def hello(request):
    return PlainTextResponse("hello")


typo_starlette = Starlette(
    routes=[Route("/", hello)],
    middleware=[Middleware(MonaASGIMiddleware, context_class="SHOP_API", batch_sise=10)],
)
