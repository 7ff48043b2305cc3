"""``asgi_application()``: Django's ASGI app answering lifespan, flushing at shutdown."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("django")

import mona_middleware as mona
from mona_middleware.django import asgi_application
from mona_middleware.transports import InMemoryTransport

from .helpers import get


@pytest.fixture
def held() -> InMemoryTransport:
    """An in-memory exporter that only sends on flush/shutdown."""
    transport = InMemoryTransport()
    mona.configure(transport=transport, flush_interval=30)
    return transport


def test_asgi_application_answers_lifespan_and_flushes_at_shutdown(held):
    pytest.importorskip("starlette")  # the ASGI helpers' module needs it
    from ..asgi.helpers import LifespanDriver

    application = asgi_application()

    async def serve() -> list:
        driver = LifespanDriver(application, held)
        answers = [await driver.startup()]
        sent = await get(application, "/v/3")
        assert sent[-1]["body"] == b"3"
        answers.append(await driver.shutdown())
        return answers

    # Django refuses lifespan; the wrapper speaks it and flushes before shutdown.complete.
    assert asyncio.run(serve()) == [
        ("lifespan.startup.complete", 0),
        ("lifespan.shutdown.complete", 1),
    ]
    (fields,) = held.contexts().values()
    assert (fields["n"], fields["echo"], fields["http_route"]) == (3, 3, "/v/<int:n>")
