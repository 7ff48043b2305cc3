"""``WebRecorder.start`` and ``WebRecorder.finish`` each take a short path for the common
request (start: no header to read, no OpenTelemetry; finish: every field named, a plain
request answered without an error, not continued, not traced) beside their general one.
For any request (odd methods, routes, statuses, durations, exceptions, trace ids, a
continued context, renamed or dropped fields, sampling, excluded paths) a monitor free to
take them and one kept on the general paths open the same context and record the same
fields, in the same order, giving the same wire messages and counts.

The general paths are forced without touching the recorder: ``reads_headers`` (start)
and ``_all_named`` (finish) are set on one monitor; no option sets them without reading
headers or dropping a field. OpenTelemetry, if another test imported it, is hidden from
both (the short paths need it absent)."""

from __future__ import annotations

import json
import os
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mona_middleware._api.context import current_var
from mona_middleware._export.prepare import context_messages
from mona_middleware._runtime import process
from mona_middleware._util.stats import ExportStats
from mona_middleware._web import recorder
from mona_middleware._web.recorder import WebRecorder
from mona_middleware.config import MonaConfig


class Verb(str):
    """A server's str subclass for the method."""


class AppError(Exception):
    pass


def _keep(message):
    return message


methods = st.one_of(
    st.sampled_from(["GET", "POST", "get", "M-SEARCH", "PROPFIND", "", "X" * 40, "\u00e9"]),
    st.text(max_size=8),
    st.sampled_from([b"GET", b"\xff\xfe", Verb("PATCH"), Verb("Y" * 40), None, 7]),
)
routes = st.one_of(st.none(), st.sampled_from(["/items/{id}", "", "/\u2028"]), st.text(max_size=8))
statuses = st.one_of(st.none(), st.integers(100, 599), st.sampled_from([0, -1, 999]))
exceptions = st.sampled_from([None, None, ValueError("x"), AppError(), KeyboardInterrupt()])
renames = st.fixed_dictionaries(
    {},
    optional={
        name: st.sampled_from([None, f"my_{name}"])
        for name in ("method", "route", "status_code", "duration_ms", "exception", "trace_id")
    },
)
requests = st.fixed_dictionaries(
    {
        "method": methods,
        "path": st.sampled_from(["/", "/health", "/items/1"]),
        "route": routes,
        "status": statuses,
        "took": st.floats(0, 100, allow_nan=False),
        "ended": st.booleans(),  # known before finish, or read there
        "exception": exceptions,
        "trace_id": st.sampled_from([None, None, "4bf92f3577b34da6a3ce929d0e0e4736"]),
        "continued": st.booleans(),
    }
)
web_options = st.fixed_dictionaries(
    {"context_class": st.sampled_from(["WEB", "\u00e9"])},
    optional={
        "field_names": renames,
        "service_name": st.sampled_from(["svc"]),
        "excluded_urls": st.sampled_from([["^/health"]]),
        "before_send": st.sampled_from([None, _keep]),
    },
)


SAMPLING = {rate: MonaConfig(sampling_rate=rate) for rate in (0.0, 1.0)}


def play(monitor: WebRecorder, request: dict, clock: float, sampled: float = 1.0):
    """One request through ``monitor``: what it opened, recorded, sent and counted."""
    counted: list = []
    enqueued: list = []
    calls = {"sample": 0, "_ms": 0}

    def counting(name, real):
        def wrapper(*args):
            calls[name] += 1
            return real(*args)

        return wrapper

    with (
        mock.patch.object(process, "count", lambda name, amount=1: counted.append(name)),
        mock.patch.object(process, "enqueue", lambda item: enqueued.append(item) or True),
        mock.patch.object(recorder, "_MODULES", {}),  # no OpenTelemetry
        mock.patch.object(recorder, "sample", counting("sample", recorder.sample)),
        mock.patch.object(recorder, "_ms", counting("_ms", recorder._ms)),
        mock.patch.object(recorder.time, "perf_counter", lambda: clock),
        mock.patch.object(process.STATE, "config", SAMPLING[sampled]),  # no new exporter
    ):
        ctx = monitor.start(request["method"], request["path"], None)
        if ctx is None:
            return None, counted, calls
        opened = current_var.get() is ctx
        ctx.opened_at = 1_700_000_000.0  # each message's default exportTimestamp
        state = ctx.request
        state.started = clock - request["took"]
        state.ended = clock if request["ended"] else None
        state.route, state.status = request["route"], request["status"]
        state.exception, state.trace_id = request["exception"], request["trace_id"]
        state.continued = request["continued"]
        monitor.finish(ctx, flush=False)
    made = (
        type(state).__name__,
        state.method,
        ctx.context_class,
        ctx.disabled,
        ctx.sampled_out,
        ctx.before_send,
        ctx.closed,
        opened,
        current_var.get() is ctx,
    )
    own = None if ctx._own is None else list(ctx._own.items())  # in order
    stats = ExportStats()
    messages = [context_messages(item, MonaConfig(), stats) for item in enqueued]
    for batch in messages:
        for message in batch:
            message["contextId"] = "-"  # made afresh per context
    wire = json.dumps(messages, sort_keys=True)
    return (made, own, wire, stats.snapshot()), counted, calls


@settings(
    max_examples=int(os.environ.get("RECORDER_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(options=web_options, request=requests, sampled=st.sampled_from([1.0, 1.0, 0.0]))
def test_the_short_paths_and_the_general_paths_record_the_same(options, request, sampled):
    short, general = WebRecorder(options), WebRecorder(options)
    general.reads_headers = True  # start(): the general path (no header option: none read)
    general._all_named = False  # finish(): the general path, each field by its name
    clock = 5_000.0
    short_result, short_counted, short_calls = play(short, request, clock, sampled)
    general_result, general_counted, general_calls = play(general, request, clock, sampled)
    assert short_result == general_result
    assert short_counted == general_counted
    if short_result is not None and sampled == 1.0:
        assert (short_calls["sample"], general_calls["sample"]) == (0, 1)  # the paths taken
        if short_result[1] is not None:
            names = options.get("field_names", {})
            timed = names.get("duration_ms", "") is not None
            assert general_calls["_ms"] == timed
            plain = request["status"] is not None and request["exception"] is None
            plain = plain and not request["continued"] and request["trace_id"] is None
            if plain and None not in names.values():
                assert short_calls["_ms"] == 0  # finish()'s short path


def test_a_plain_request_takes_the_short_paths_and_records_the_usual_fields():
    request = {
        "method": "GET",
        "path": "/items/1",
        "route": "/items/{id}",
        "status": 200,
        "took": 0.0125,
        "ended": True,
        "exception": None,
        "trace_id": None,
        "continued": False,
    }
    result, counted, calls = play(WebRecorder({"context_class": "WEB"}), request, 5_000.0)
    assert calls == {"sample": 0, "_ms": 0} and counted == []
    assert result[1] == [
        ("http_method", "GET"),
        ("http_route", "/items/{id}"),
        ("http_status_code", 200),
        ("duration_ms", 12.5),
    ]
