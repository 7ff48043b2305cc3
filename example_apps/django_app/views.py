"""Views of a model-serving endpoint; each adds what only it knows to the request's context."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.decorators import method_decorator
from django.views import View

import mona_middleware as mona

MODEL_VERSION = "2026.11-b"


def _items(request: HttpRequest) -> list[int]:
    if request.method == "POST" and request.body:
        return [int(n) for n in json.loads(request.body).get("items", [])]
    return [int(n) for n in request.GET.get("items", "1,2,3").split(",") if n]


def score(items: list[int]) -> float:
    # Deep in the model code: export() finds the request's context by itself.
    value = round(sum(items) / (len(items) * 100 or 1), 4)
    mona.export({"score": value})
    return value


def predict(request: HttpRequest) -> JsonResponse:
    """A function view: the request's context has the default class (settings.MONA)."""
    items = _items(request)
    mona.export({"model_version": MODEL_VERSION, "item_count": len(items)})
    return JsonResponse({"score": score(items), "model_version": MODEL_VERSION})


@method_decorator(mona.monitor("ITEM_LOOKUP", fields={"model_version": MODEL_VERSION}), name="get")
class ItemView(View):
    """A class-based view whose requests are contexts of class ITEM_LOOKUP."""

    def get(self, request: HttpRequest, item_id: int) -> JsonResponse:
        mona.export({"item_id": item_id, "item_count": 1})
        return JsonResponse({"id": item_id, "score": score([item_id])})


@mona.monitor("ASYNC_RECOMMENDATIONS")
async def predict_async(request: HttpRequest) -> JsonResponse:
    """An async view: exports before and after an await land in the same context."""
    items = _items(request)
    mona.export({"model_version": MODEL_VERSION, "item_count": len(items)})
    await asyncio.sleep(0)
    return JsonResponse({"score": score(items), "model_version": MODEL_VERSION})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Rows streamed one by one; the context closes after the last one is sent."""

    def rows() -> Iterator[str]:
        for n in range(3):
            mona.export({"rows_streamed": n + 1})
            yield f"row {n}\n"

    mona.export({"model_version": MODEL_VERSION})
    return StreamingHttpResponse(rows(), content_type="text/plain")


async def stream_async(request: HttpRequest) -> StreamingHttpResponse:
    """The same with an async iterator (serve it with asgi.py)."""

    async def rows() -> AsyncIterator[str]:
        for n in range(3):
            await asyncio.sleep(0)
            mona.export({"rows_streamed": n + 1})
            yield f"row {n}\n"

    mona.export({"model_version": MODEL_VERSION})
    return StreamingHttpResponse(rows(), content_type="text/plain")


def fail(request: HttpRequest) -> HttpResponse:
    mona.export({"model_version": MODEL_VERSION})
    raise RuntimeError("model crashed")  # a 500 with exception_type=RuntimeError


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")  # excluded_urls: no context at all
