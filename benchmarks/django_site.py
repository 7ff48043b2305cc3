"""The Django URLconf of the benchmark app (settings come from ``apps._django``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from django.urls import path

RECORD: Callable[[int], None] = lambda item_id: None  # noqa: E731 - set by apps._django


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    RECORD(item_id)
    return JsonResponse({"item_id": item_id, "score": 0.93})


urlpatterns = [path("items/<int:item_id>", item)]
