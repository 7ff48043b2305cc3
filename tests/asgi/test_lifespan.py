"""Lifespan: the exporter is flushed before the server hears ``shutdown.complete``.

The exporter here flushes only when asked (30 s interval), so a message in the
transport at ``shutdown.complete`` time was sent by the middleware's shutdown flush.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import mona_middleware as mona
from mona_middleware.asgi import MonaASGIMiddleware, MonaLifespan
from mona_middleware.transports import InMemoryTransport

from ..conftest import rest_options
from .helpers import LifespanDriver, TestClient, call


@pytest.fixture
def held() -> InMemoryTransport:
    """An in-memory exporter that only sends on flush/shutdown."""
    transport = InMemoryTransport()
    mona.configure(transport=transport, flush_interval=30)
    return transport


async def hello(request):
    mona.export({"hello": "world"})
    return PlainTextResponse("hi")


def starlette_app(**kwargs) -> Starlette:
    middleware = [Middleware(MonaASGIMiddleware, handle_sigterm=False)]
    return Starlette(routes=[Route("/", hello)], middleware=middleware, **kwargs)


async def no_lifespan(scope, receive, send):
    """An app that supports HTTP only, as many hand-written ones do."""
    assert scope["type"] == "http", "no lifespan here"
    mona.export({"raw": True})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})


async def serve_one_request(app, held) -> list:
    driver = LifespanDriver(app, held)
    answers = [await driver.startup()]
    await call(app, "/")
    answers.append(await driver.shutdown())
    return answers


def test_the_apps_own_lifespan_runs_and_shutdown_flushes_first(held):
    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield
        events.append("shutdown")

    answers = asyncio.run(serve_one_request(starlette_app(lifespan=lifespan), held))
    assert events == ["startup", "shutdown"]
    assert answers == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 1)]
    assert next(iter(held.contexts().values()))["hello"] == "world"


def test_an_app_without_lifespan_gets_it_answered_and_flushed(held):
    app = MonaASGIMiddleware(no_lifespan, handle_sigterm=False)
    answers = asyncio.run(serve_one_request(app, held))
    assert answers == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 1)]
    assert next(iter(held.contexts().values()))["raw"] is True


def test_an_app_that_ignores_lifespan_and_returns_is_answered_too(held):
    async def ignores(scope, receive, send):
        if scope["type"] == "http":
            await no_lifespan(scope, receive, send)

    app = MonaASGIMiddleware(ignores, handle_sigterm=False)
    answers = asyncio.run(serve_one_request(app, held))
    assert answers == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 1)]


def test_a_failing_startup_is_reported_by_the_app_and_not_hidden(held):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        raise ConnectionError("no database")
        yield

    async def run():
        driver = LifespanDriver(starlette_app(lifespan=lifespan), held)
        answer = await driver.startup()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(driver.task, 10)
        return answer

    assert asyncio.run(run()) == ("lifespan.startup.failed", 0)


def test_test_client_shutdown_flushes_with_and_without_app_lifespan(held):
    for app in (starlette_app(), MonaASGIMiddleware(no_lifespan, handle_sigterm=False)):
        with TestClient(app) as client:
            assert client.get("/").status_code == 200
            assert held.messages == []  # held until the shutdown
        assert len(held.messages) == 1
        held.clear()


def test_an_app_failing_in_its_shutdown_is_still_flushed(held):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        raise ConnectionError("could not close the pool")

    async def run():
        app = starlette_app(lifespan=lifespan)
        driver = LifespanDriver(app, held)
        await driver.startup()
        await call(app, "/")
        await driver.inbox.put({"type": "lifespan.shutdown"})
        answer = await asyncio.wait_for(driver.answers.get(), 10)
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(driver.task, 10)
        return answer

    assert asyncio.run(run()) == ("lifespan.shutdown.failed", 1)


def test_the_shutdown_flush_does_not_block_the_event_loop(mona_server):
    mona.configure(**rest_options(mona_server, flush_interval=30, shutdown_timeout=5))
    mona_server.hang(0.5)  # the backend takes 0.5 s to answer the flush
    app = MonaASGIMiddleware(no_lifespan, handle_sigterm=False)

    async def run() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        driver = LifespanDriver(app, InMemoryTransport())
        await driver.startup()
        await call(app, "/")
        ticker = asyncio.ensure_future(tick())
        await driver.shutdown()
        ticker.cancel()
        return ticks

    assert asyncio.run(run()) >= 10  # the loop kept running while the flush waited
    assert len(mona_server.messages()) == 1


def test_mona_lifespan_alone_flushes_an_app_that_refuses_lifespan(held):
    """``MonaLifespan``: what Django's ASGI app gets; monitoring is someone else's job."""

    async def refuses(scope, receive, send):  # as Django's ASGIHandler does
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        with mona.context("INNER"):
            await no_lifespan(scope, receive, send)

    app = MonaLifespan(refuses)
    answers = asyncio.run(serve_one_request(app, held))
    assert answers == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 1)]
    assert list(held.contexts().values()) == [{"raw": True}]


def test_mona_lifespan_runs_the_apps_own_lifespan(held):
    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield
        events.append("shutdown")

    app = MonaLifespan(starlette_app(lifespan=lifespan))
    answers = asyncio.run(serve_one_request(app, held))
    assert events == ["startup", "shutdown"]
    assert answers == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 1)]
