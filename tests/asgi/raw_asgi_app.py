"""A hand-written ASGI app without lifespan support, served by uvicorn in the server tests.

uvicorn --lifespan on tests.asgi.raw_asgi_app:app
"""

import mona_middleware as mona
from mona_middleware.asgi import MonaASGIMiddleware


async def raw(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"{scope['type']} is not supported")  # what uvicorn probes for
    if scope["path"] != "/ready":
        mona.export({"raw": scope["path"]})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})


app = MonaASGIMiddleware(raw, context_class="RAW_ASGI", excluded_urls="^/ready$")
