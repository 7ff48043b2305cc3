"""Views for the Django adapter tests; each exports what the test then looks for."""

from __future__ import annotations

import asyncio
import threading

from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.decorators import method_decorator
from django.views import View

import mona_middleware as mona

# Set by the concurrency test: makes the first requests wait inside their views together.
BARRIER: threading.Barrier | None = None


class AsyncGate:
    """``threading.Barrier`` for tasks of one event loop (``asyncio.Barrier`` is 3.11+)."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.opened = asyncio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived == self.parties:
            self.opened.set()
        await asyncio.wait_for(self.opened.wait(), 20)


ASYNC_GATE: AsyncGate | None = None
# Set by the FileResponse tests: the file a view sends.
FILE_PATH: str | None = None


def item(request, item_id):
    mona.export({"item_id": item_id})
    return JsonResponse({"id": item_id})


def index(request):
    return HttpResponse("index")


def legacy(request, code):
    mona.export({"code": code})
    return HttpResponse(code)


def boom(request):
    mona.export({"before": "crash"})
    raise ValueError("model crashed")


def missing(request):
    raise Http404("no such item")


def stream(request):
    def rows():
        for n in range(3):
            mona.export({"rows": n + 1})
            yield f"{n}\n"

    return StreamingHttpResponse(rows())


def stream_fails(request):
    def rows():
        yield "a"
        raise RuntimeError("mid-stream")

    return StreamingHttpResponse(rows())


def astream(request):
    async def rows():
        for n in range(3):
            await asyncio.sleep(0)
            mona.export({"rows": n + 1})
            yield f"{n}\n"

    return StreamingHttpResponse(rows())


@mona.monitor("SCORING", fields={"team": "ml"})
def decorated(request):
    mona.export({"score": 0.5})
    return HttpResponse("scored")


@method_decorator(mona.monitor("CBV_SCORING", fields={"kind": "cbv"}), name="dispatch")
class Scored(View):
    def get(self, request, n):
        mona.export({"n": n})
        return HttpResponse(str(n))


@mona.monitor("ASYNC_SCORING")
async def async_view(request, n):
    mona.export({"n": n})
    await asyncio.sleep(0.001)
    mona.export({"echo": n})
    return HttpResponse(str(n))


def value(request, n):
    mona.export({"n": n})
    if BARRIER is not None and n < BARRIER.parties:
        BARRIER.wait()  # these requests are all inside their views at the same time
    mona.export({"echo": n})
    return HttpResponse(str(n))


async def async_value(request, n):
    mona.export({"n": n})
    if ASYNC_GATE is not None and n < ASYNC_GATE.parties:
        await ASYNC_GATE.wait()  # these requests are all inside their views at the same time
    await asyncio.sleep(0)
    mona.export({"echo": n})
    return HttpResponse(str(n))


def download(request):
    mona.export({"view": "download"})
    return FileResponse(open(FILE_PATH, "rb"), content_type="text/plain")  # closes the file


def health(request):
    mona.export({"health": "checked"})  # excluded in some tests: must find no context
    return HttpResponse("ok")


def exploding_middleware(get_response):
    """A middleware that fails before the view: Django answers 500 without process_exception."""

    def middleware(request):
        if request.path == "/mw-boom":
            raise KeyError("middleware bug")
        return get_response(request)

    return middleware
