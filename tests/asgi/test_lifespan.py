"""Lifespan: the exporter is flushed before the server hears ``shutdown.complete``.

The exporter here flushes only when asked (30 s interval), so a message in the
transport at ``shutdown.complete`` time was sent by the middleware's shutdown flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

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


class MiddlewareException(Exception):
    pass


class BrokenMiddleware:
    """Starlette's ``test_exception_in_middleware``: it fails on every call."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        raise MiddlewareException()


def test_a_middleware_failing_on_every_call_fails_the_start_as_without_us(held):
    # Starlette's own test_exception_in_middleware, with ours added as the README says
    # (outermost) and wrapped around the app directly: the failure is the app's, not a
    # refusal of lifespan, so the test client still sees it.
    added = Starlette(middleware=[Middleware(BrokenMiddleware)])
    added.add_middleware(MonaASGIMiddleware, handle_sigterm=False)
    for app in (added, MonaASGIMiddleware(BrokenMiddleware(None), handle_sigterm=False)):
        with pytest.raises(MiddlewareException), TestClient(app):
            pass  # pragma: no cover


def test_an_app_failing_after_reading_startup_fails_its_start_as_without_us(held):
    """It read ``lifespan.startup`` and raised without answering (its database is not
    there): no answer from us, the exception reaches the server, which decides."""

    async def no_database(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            raise ConnectionError("database unreachable")
        await no_lifespan(scope, receive, send)

    async def run() -> bool:
        driver = LifespanDriver(MonaASGIMiddleware(no_database, handle_sigterm=False), held)
        driver.task = asyncio.ensure_future(
            driver.app({"type": "lifespan"}, driver.inbox.get, driver.send)
        )
        await driver.inbox.put({"type": "lifespan.startup"})
        with pytest.raises(ConnectionError, match="database unreachable"):
            await asyncio.wait_for(driver.task, 10)
        return driver.answers.empty()

    assert asyncio.run(run())  # nothing answered startup.complete for it
    no_database_app = MonaASGIMiddleware(no_database, handle_sigterm=False)
    with pytest.raises(ConnectionError), TestClient(no_database_app):
        pass  # pragma: no cover


def test_an_app_refusing_lifespan_is_answered_with_a_warning_naming_the_error(held, caplog):
    caplog.set_level(logging.DEBUG, logger="mona_middleware")
    app = MonaASGIMiddleware(no_lifespan, handle_sigterm=False)
    answers = asyncio.run(serve_one_request(app, held))
    assert answers == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 1)]
    (warned,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "AssertionError" in warned.getMessage() and "lifespan" in warned.getMessage()
    assert warned.exc_info is not None and warned.exc_info[0] is AssertionError


def test_mona_lifespan_answers_a_refusal_quietly_it_is_what_it_is_for(held, caplog):
    caplog.set_level(logging.DEBUG, logger="mona_middleware")
    driver_answers = asyncio.run(serve_one_request(MonaLifespan(no_lifespan), held))
    assert [kind for kind, _ in driver_answers] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    lifespan_logs = [r for r in caplog.records if "lifespan" in r.getMessage()]
    assert lifespan_logs and all(r.levelno == logging.DEBUG for r in lifespan_logs)
