"""Nothing of ours blocks aiohttp's event loop, under blockbuster as aiohttp's suite runs.

The app is instrumented on the running loop (as an app factory run by ``web.run_app``
or an ``aiohttp_client`` fixture does), so the exporter is built, and the spool looked
at, off it; every context the requests close arrives at the Mona server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("blockbuster")

import aiohttp
from aiohttp import web
from blockbuster import blockbuster_ctx

import mona_middleware as mona
from mona_middleware.aiohttp import instrument

from ..servers import mona_env

pytestmark = pytest.mark.timeout(120)

REQUESTS = 60


@pytest.fixture
def no_blocking() -> Iterator[None]:
    """blockbuster as aiohttp's own conftest sets it up: blocking calls made from the
    package under test (ours) fail."""
    with blockbuster_ctx("mona_middleware"):
        yield


async def item(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    mona.export({"n": n})
    if n % 7 == 0:
        raise web.HTTPNotFound()
    if n % 11 == 0:
        raise ValueError("model crashed")
    return web.json_response({"n": n})


async def serve() -> set[int]:
    app = web.Application()
    app.router.add_get("/items/{n}", item)
    instrument(app, context_class="AIOHTTP_LOOP", handle_sigterm=False)  # on the loop
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            for n in range(REQUESTS):
                async with session.get(f"/items/{n}") as response:
                    await response.read()
    finally:
        await asyncio.wait_for(runner.cleanup(), 30)  # flushes, off the loop
    return set(range(REQUESTS))


def test_every_context_arrives_from_an_app_instrumented_on_the_loop(
    no_blocking, mona_server, monkeypatch, caplog
):
    for name, value in mona_env(mona_server).items():
        if name.startswith("MONA_"):
            monkeypatch.setenv(name, value)  # the exporter is made from these at first use
    caplog.set_level(logging.WARNING, logger="mona_middleware")
    sent = asyncio.run(serve())
    assert mona_server.wait_for_messages(len(sent), timeout=10)
    assert {fields["n"] for fields in mona_server.contexts().values()} == sent
    assert mona.stats()["dropped"] == {}
    ours = [r for r in caplog.records if r.name == "mona_middleware"]
    assert [r.getMessage() for r in ours if r.levelno >= logging.ERROR] == []
    assert "BlockingError" not in caplog.text  # aiohttp logs the /items/11 ValueError
