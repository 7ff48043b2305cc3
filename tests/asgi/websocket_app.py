"""A Starlette app with websocket endpoints, for the TestClient and for uvicorn.

``uvicorn tests.asgi.websocket_app:app`` serves it; the exporter then comes from the
environment (``tests.servers.mona_env``).
"""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import mona_middleware as mona
from mona_middleware.asgi import MonaASGIMiddleware


async def chat(websocket: WebSocket) -> None:
    """Echoes each text; "bye" makes the server close with 4000; exports per message."""
    await websocket.accept()
    mona.export({"room": websocket.path_params["room"]})
    try:
        while True:
            text = await websocket.receive_text()
            mona.export({"last_text": text})
            if text == "bye":
                await websocket.close(code=4000)
                return
            await websocket.send_text(text.upper())
            await websocket.send_text(f"{len(text)} chars")
    except WebSocketDisconnect:  # the client closed
        mona.export({"client_left": True})


async def fails(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    raise RuntimeError("model crashed mid-connection")


async def rejected(websocket: WebSocket) -> None:
    await websocket.close(code=1008)  # before accepting: the handshake is refused


async def index(request):
    return PlainTextResponse("ok")


ROUTES = [
    Route("/", index),
    WebSocketRoute("/ws/chat/{room}", chat),
    WebSocketRoute("/ws/fails", fails),
    WebSocketRoute("/ws/rejected", rejected),
    Mount("/tenants/{tenant}", routes=[WebSocketRoute("/ws/{room}", chat)]),
]


def make_app(**options) -> Starlette:
    options = {"context_class": "CHAT_HTTP", **options}
    return Starlette(routes=ROUTES, middleware=[Middleware(MonaASGIMiddleware, **options)])


app = make_app()
