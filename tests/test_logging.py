"""``ContextFilter`` and the structlog processor: each log line carries the context of the
request that logged it, with two asyncio requests in flight at once."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

import mona_middleware as mona
from mona_middleware.logging import ContextFilter, add_mona_context


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_outside_a_context_the_fields_are_empty_strings():
    handler = _Records()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        logging.Formatter("%(mona_context_id)s|%(mona_context_class)s|%(message)s")
    )
    log = logging.getLogger("tests.logging.outside")
    log.addHandler(handler)
    try:
        log.warning("hello")
    finally:
        log.removeHandler(handler)
    assert handler.format(handler.records[0]) == "||hello"
    assert add_mona_context(None, "info", {"event": "x"}) == {
        "event": "x",
        "mona_context_id": "",
        "mona_context_class": "",
    }


def test_a_json_log_line_names_the_context(memory):
    handler = _Records()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        logging.Formatter(
            '{"message": "%(message)s", "mona_context_id": "%(mona_context_id)s", '
            '"mona_context_class": "%(mona_context_class)s"}'
        )
    )
    log = logging.getLogger("tests.logging.json")
    log.addHandler(handler)
    try:
        with mona.context("MODEL", context_id="r-7"):
            log.warning("scored")
    finally:
        log.removeHandler(handler)
    line = json.loads(handler.format(handler.records[0]))
    assert line == {"message": "scored", "mona_context_id": "r-7", "mona_context_class": "MODEL"}


def test_two_concurrent_asyncio_requests_each_log_their_own_context(memory):
    pytest.importorskip("starlette")
    httpx = pytest.importorskip("httpx")
    structlog = pytest.importorskip("structlog")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from mona_middleware.asgi import MonaASGIMiddleware

    handler = _Records()
    handler.addFilter(ContextFilter())
    log = logging.getLogger("tests.logging.concurrent")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    events: list[dict] = []

    def keep(logger, method_name, event_dict):
        events.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(processors=[add_mona_context, keep], cache_logger_on_first_use=False)
    both_in = asyncio.Event()
    arrived = []

    async def work(request):
        n = int(request.path_params["n"])
        mona.export({"n": n})
        log.info("start %d", n)
        structlog.get_logger().info("start", n=n)
        arrived.append(n)
        if len(arrived) == 2:
            both_in.set()
        await asyncio.wait_for(both_in.wait(), 10)  # the other request is in flight now
        log.info("end %d", n)
        structlog.get_logger().info("end", n=n)
        return PlainTextResponse("ok")

    app = MonaASGIMiddleware(
        Starlette(routes=[Route("/work/{n}", work)]), handle_sigterm=False, context_class="JOB"
    )

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = await asyncio.gather(client.get("/work/1"), client.get("/work/2"))
        assert [a.status_code for a in answers] == [200, 200]

    try:
        asyncio.run(main())
    finally:
        log.removeHandler(handler)
        structlog.reset_defaults()
    assert mona.flush(5)
    ids = {fields["n"]: key[1] for key, fields in memory.contexts().items()}
    assert len(set(ids.values())) == 2
    assert len(handler.records) == 4 and len(events) == 4
    for record in handler.records:
        n = record.args[0]
        assert (record.mona_context_id, record.mona_context_class) == (ids[n], "JOB")
    for event in events:
        assert (event["mona_context_id"], event["mona_context_class"]) == (ids[event["n"]], "JOB")
    assert [r.getMessage() for r in handler.records][:2] == ["start 1", "start 2"]  # overlapped
