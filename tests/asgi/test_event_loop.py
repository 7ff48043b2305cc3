"""Nothing of ours blocks a running event loop, under blockbuster as Starlette's suite runs.

blockbuster makes every blocking call (file system, ``time.sleep``, a held lock...) made
on a thread that runs an asyncio loop raise ``BlockingError``. Starlette builds its
middleware stack on the first call, so ``MonaASGIMiddleware`` (and the exporter it needs)
is built on the loop: the exporter, its transport and its spool must be made off it, and
every context the requests close must still arrive, or be counted in ``stats()``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("blockbuster")

from blockbuster import blockbuster_ctx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

import mona_middleware as mona
from mona_middleware.asgi import MonaASGIMiddleware

from ..servers import mona_env
from .helpers import TestClient

pytestmark = pytest.mark.timeout(120)

APPS, REQUESTS = 4, 30  # each app builds its stack (and a WebRecorder) on the loop


@pytest.fixture
def no_blocking() -> Iterator[None]:
    """blockbuster as Starlette's own conftest sets it up."""
    with blockbuster_ctx() as buster:
        buster.functions["os.stat"].can_block_in("/mimetypes.py", "init")
        yield


async def item(request: Request) -> JSONResponse:
    mona.export({"n": int(request.path_params["n"])})
    return JSONResponse({"ok": True})


def sync_item(request: Request) -> JSONResponse:  # Starlette runs it in its thread pool
    mona.export({"n": int(request.path_params["n"])})
    return JSONResponse({"ok": True})


async def fails(request: Request) -> JSONResponse:
    mona.export({"n": int(request.path_params["n"])})
    raise ValueError("model crashed")


async def streams(request: Request) -> StreamingResponse:
    n = int(request.path_params["n"])

    async def rows():
        mona.export({"n": n})
        yield b"row\n"

    return StreamingResponse(rows())


async def later(request: Request) -> JSONResponse:
    n = int(request.path_params["n"])
    return JSONResponse({"ok": True}, background=BackgroundTask(mona.export, {"n": n}))


ROUTES = [
    Route("/item/{n:int}", item),
    Route("/sync/{n:int}", sync_item),
    Route("/fail/{n:int}", fails),
    Route("/stream/{n:int}", streams),
    Route("/later/{n:int}", later),
]
KINDS = ["item", "sync", "fail", "stream", "later"]


def serve(count_from: int) -> set[int]:
    """One app, its stack built lazily on the loop, through its whole lifespan."""
    app = Starlette(routes=ROUTES)
    app.add_middleware(MonaASGIMiddleware, context_class="LOOP", handle_sigterm=False)
    sent = set()
    with TestClient(app, raise_server_exceptions=False) as client:
        for n in range(count_from, count_from + REQUESTS):
            kind = KINDS[n % len(KINDS)]
            assert client.get(f"/{kind}/{n}").status_code == (500 if kind == "fail" else 200)
            sent.add(n)
    return sent


def assert_nothing_of_ours_failed(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "mona" in r.name]
    assert errors == [], [r.getMessage() for r in errors]
    assert "BlockingError" not in caplog.text


def test_every_context_arrives_from_apps_built_on_the_loop(
    no_blocking, mona_server, monkeypatch, caplog
):
    # The exporter comes from the environment at first use, with the REST transport and
    # its spool (a directory listed at start-up); only the lifespan shutdown flushes.
    for name, value in mona_env(mona_server).items():
        if name.startswith("MONA_"):
            monkeypatch.setenv(name, value)
    caplog.set_level(logging.WARNING, logger="mona_middleware")
    sent: set[int] = set()
    for app in range(APPS):
        sent |= serve(app * REQUESTS)
        assert mona_server.wait_for_messages(len(sent), timeout=10)  # flushed at shutdown
    received = {fields["n"] for fields in mona_server.contexts().values()}
    assert received == sent and len(sent) == APPS * REQUESTS
    stats = mona.stats()
    assert stats["dropped"] == {} and stats["messages_sent"] == len(sent)
    assert_nothing_of_ours_failed(caplog)


def test_without_credentials_every_context_is_in_the_file(no_blocking, caplog):
    # The no-account default: a JSONL file whose path the transport resolves (abspath,
    # getcwd) when it is made; the working directory is the test's own.
    caplog.set_level(logging.WARNING, logger="mona_middleware")
    sent = serve(0)
    assert mona.flush(5)
    lines = Path("mona-messages.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["message"]["n"] for line in lines) == sorted(sent)
    assert mona.stats()["dropped"] == {}
    assert_nothing_of_ours_failed(caplog)
