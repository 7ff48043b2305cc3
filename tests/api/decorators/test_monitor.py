"""@monitor on plain functions (batch jobs) and inside a request, sync and async."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

import mona_middleware as mona
from mona_middleware._web.recorder import WebRecorder


@mona.monitor("NIGHTLY_JOB", fields={"team": "ml"})
def nightly(rows: int, *, dry_run: bool = False) -> int:
    mona.export({"rows": rows})
    return rows * 2


@mona.monitor
async def score_async(value: float) -> float:
    await asyncio.sleep(0)
    mona.export({"value": value})
    return value


@mona.monitor("FAILING_JOB")
def failing() -> None:
    mona.export({"started": True})
    raise KeyError("missing")


def test_each_call_outside_a_request_is_its_own_context(memory):
    assert nightly(3) == 6 and nightly(4, dry_run=True) == 8
    assert mona.flush(5)
    contexts = sorted(memory.contexts().values(), key=lambda f: f["rows"])
    assert [(f["team"], f["rows"]) for f in contexts] == [("ml", 3), ("ml", 4)]
    assert all(f["duration_ms"] >= 0 for f in contexts)
    assert {key[0] for key in memory.contexts()} == {"NIGHTLY_JOB"}


def test_async_functions_and_the_bare_form(memory):
    assert asyncio.run(score_async(0.5)) == 0.5
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "SCORE_ASYNC" and fields["value"] == 0.5


def test_an_exception_is_recorded_and_propagates_unchanged(memory):
    with pytest.raises(KeyError, match="missing"):
        failing()
    assert mona.flush(5)
    (fields,) = memory.contexts().values()
    assert fields["exception_type"] == "KeyError" and fields["started"] is True


def test_inside_a_request_it_names_the_request_context(memory):
    monitor = WebRecorder({"handle_sigterm": False})
    ctx = monitor.start("GET", "/x", lambda name: None)
    assert nightly(5) == 10
    monitor.finish(ctx)
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "NIGHTLY_JOB" and fields["rows"] == 5 and fields["http_method"] == "GET"
    assert "duration_ms" in fields  # the request's, not a second context's


def test_in_a_context_continued_from_the_caller_the_callers_class_stays(memory):
    monitor = WebRecorder({"handle_sigterm": False, "accept_incoming_context": True})
    baggage = "mona.context_class=GATEWAY,mona.context_id=req-1"
    ctx = monitor.start("GET", "/x", lambda name: baggage if name == "baggage" else None)
    assert nightly(5) == 10
    monitor.finish(ctx)
    assert mona.flush(5)
    assert memory.contexts() == {("GATEWAY", "req-1"): {"rows": 5, "team": "ml"}}


def test_signature_and_metadata_are_kept():
    # this module's annotations are strings: the wrapper's are evaluated in *its* globals
    assert inspect.signature(nightly) == inspect.signature(nightly.__wrapped__, eval_str=True)
    assert inspect.signature(nightly).parameters["rows"].annotation is int
    assert nightly.__name__ == "nightly"
    assert inspect.iscoroutinefunction(score_async)
    assert inspect.signature(score_async).return_annotation is float


def test_annotations_that_cannot_be_evaluated_leave_the_plain_signature():
    def later(item: NotYetDefined) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    wrapped = mona.monitor(later)  # decoration never raises
    assert "__signature__" not in vars(wrapped) and wrapped.__wrapped__ is later
    assert inspect.signature(wrapped).parameters["item"].annotation == "NotYetDefined"

    def plain(*args, **kwargs):
        pass

    assert "__signature__" not in vars(mona.monitor(plain))  # nothing to evaluate


# -- flush=True: serverless handlers ------------------------------------------------


@mona.monitor("LAMBDA_HANDLER", flush=True)
def handler(event: dict) -> dict:
    mona.export({"order": event["order"]})
    return {"statusCode": 200}


@mona.monitor("ASYNC_HANDLER", flush=True)
async def async_handler(event: dict) -> dict:
    await asyncio.sleep(0)
    mona.export({"order": event["order"]})
    return {"statusCode": 200}


def _lambda_config(server, **extra):
    from tests.conftest import rest_options

    # Nothing would go out by itself for 10 minutes: only the flush delivers.
    mona.configure(**rest_options(server, flush_interval=600, **extra))


def test_flush_true_delivers_the_context_before_a_sync_function_returns(mona_server):
    _lambda_config(mona_server)
    assert handler({"order": 7}) == {"statusCode": 200}
    contexts = mona_server.contexts()  # read at once: no waiting for the server
    assert [fields["order"] for (cls, _), fields in contexts.items()] == [7]
    assert {cls for cls, _ in contexts} == {"LAMBDA_HANDLER"}


def test_flush_true_delivers_the_context_before_an_async_function_returns(mona_server):
    _lambda_config(mona_server)
    assert asyncio.run(async_handler({"order": 8})) == {"statusCode": 200}
    contexts = mona_server.contexts()
    assert [(cls, fields["order"]) for (cls, _), fields in contexts.items()] == [
        ("ASYNC_HANDLER", 8)
    ]


def test_flush_true_waits_at_most_the_shutdown_timeout_for_a_hanging_backend(mona_server):
    _lambda_config(mona_server, shutdown_timeout=0.3, http_timeout=30)
    mona_server.hang(30)
    started = time.monotonic()
    assert handler({"order": 9}) == {"statusCode": 200}
    assert time.monotonic() - started < 5  # the 0.3 s bound plus scheduling, not the hang
