"""A FastAPI model-serving app monitored by mona_middleware.

Run (from the repository root):
      uvicorn example_apps.fastapi_app:app --port 8000
  or: python example_apps/fastapi_app.py                      (port $PORT or 8000)
  or: gunicorn -k uvicorn.workers.UvicornWorker example_apps.fastapi_app:app

Try:  curl -X POST localhost:8000/predict -H 'content-type: application/json' \\
           -d '{"items": [3, 5, 8], "segment": "new"}'

Every HTTP request becomes a context of class RECOMMENDATIONS; ``@mona.monitor`` puts
/predict under its own class, PREDICTIONS, with a static field. The model comes from a
dependency (``Depends``), which exports too; a background task exports after the
response was sent, into the same context. /health is excluded, each connection to the
websocket is one WEBSOCKET context (messages each way, close code, duration), and what is
still queued is flushed when the server stops (lifespan shutdown).
"""

import os
import random
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel

import mona_middleware as mona
from mona_middleware.asgi import MonaASGIMiddleware

MODEL_VERSION = "2026.11-b"


class Model:
    """Stands in for a loaded model."""

    version = MODEL_VERSION

    def score(self, items: list[int]) -> float:
        value = round(sum(items) / (len(items) * 100 or 1), 4)
        mona.export({"score": value})  # deep in the model: finds the request's context
        return value


_MODEL = Model()


def get_model() -> Model:
    mona.export({"model_version": _MODEL.version})  # dependencies run in the context too
    return _MODEL


class PredictRequest(BaseModel):
    items: list[int] = []
    segment: str = "unknown"


def record_feedback_queue(depth: int) -> None:
    # Runs after the response was sent, still inside the request's context.
    mona.export({"feedback_queue_depth": depth})


app = FastAPI(title="recommendations")
app.add_middleware(MonaASGIMiddleware, context_class="RECOMMENDATIONS", excluded_urls="^/health$")


@app.post("/predict")
@mona.monitor("PREDICTIONS", fields={"model_family": "ranker"})
async def predict(
    payload: PredictRequest,
    background: BackgroundTasks,
    model: Annotated[Model, Depends(get_model)],
) -> dict:
    items = payload.items or [random.randint(1, 100) for _ in range(5)]
    mona.export({"item_count": len(items), "user_segment": payload.segment})
    background.add_task(record_feedback_queue, len(items))
    return {"score": model.score(items), "model_version": model.version}


@app.get("/items/{item_id}")
def item(item_id: int) -> dict:  # a sync endpoint: runs in the thread pool, same context
    mona.export({"item_id": item_id})
    return {"id": item_id}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def rows() -> AsyncIterator[str]:
        for n in range(3):
            mona.export({"rows_streamed": n + 1})
            yield f"row {n}\n"

    return StreamingResponse(rows(), media_type="text/plain")


@app.get("/fail")
async def fail() -> None:
    raise RuntimeError("model crashed")


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    return "ok"


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
