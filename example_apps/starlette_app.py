"""A Starlette model-serving app monitored by mona_middleware.

Run (from the repository root):
      uvicorn example_apps.starlette_app:app --port 8000
  or: python example_apps/starlette_app.py                    (port $PORT or 8000)
  or: gunicorn -k uvicorn.workers.UvicornWorker example_apps.starlette_app:app

Try:  curl -X POST localhost:8000/predict -d '{"items": [3, 5, 8]}'

Every HTTP request becomes a context of class RECOMMENDATIONS with its method, route
template, status and duration; the endpoints add what a model-serving endpoint knows.
/health is excluded, each websocket connection is one WEBSOCKET context (messages each
way, close code, duration), and what is still queued is flushed when the server stops
(lifespan shutdown). Without MONA_SDK_* credentials the messages
go to ./mona-messages.jsonl.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

import mona_middleware as mona
from mona_middleware.asgi import MonaASGIMiddleware

MODEL_VERSION = "2026.11-b"


def score(items: list[int]) -> float:
    # Deep in the model code: export() finds the request's context by itself.
    value = round(sum(items) / (len(items) * 100 or 1), 4)
    mona.export({"score": value})
    return value


def record_feedback_queue(depth: int) -> None:
    # Runs after the response was sent, still inside the request's context.
    mona.export({"feedback_queue_depth": depth})


async def predict(request: Request) -> JSONResponse:
    payload = await request.json() if await request.body() else {}
    items = payload.get("items") or [random.randint(1, 100) for _ in range(5)]
    mona.export({"model_version": MODEL_VERSION, "item_count": len(items)})
    return JSONResponse(
        {"score": score(items), "model_version": MODEL_VERSION},
        background=BackgroundTask(record_feedback_queue, len(items)),
    )


def item(request: Request) -> JSONResponse:  # a sync endpoint: runs in the thread pool
    item_id = request.path_params["item_id"]
    mona.export({"item_id": item_id})
    return JSONResponse({"id": item_id})


async def stream(request: Request) -> StreamingResponse:
    async def rows() -> AsyncIterator[str]:
        for n in range(3):
            mona.export({"rows_streamed": n + 1})
            yield f"row {n}\n"

    return StreamingResponse(rows(), media_type="text/plain")


async def fail(request: Request) -> None:
    mona.export({"model_version": MODEL_VERSION})
    raise RuntimeError("model crashed")


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def tenant_model(request: Request) -> JSONResponse:
    tenant = request.path_params["tenant"]
    mona.export({"tenant": tenant, "model_version": MODEL_VERSION})
    return JSONResponse({"tenant": tenant})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


app = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/items/{item_id:int}", item),
        Route("/stream", stream),
        Route("/fail", fail),
        Route("/health", health),
        Mount("/tenants/{tenant}", routes=[Route("/model", tenant_model)]),
        WebSocketRoute("/ws", echo),
    ],
    middleware=[
        Middleware(MonaASGIMiddleware, context_class="RECOMMENDATIONS", excluded_urls=["^/health$"])
    ],
)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
