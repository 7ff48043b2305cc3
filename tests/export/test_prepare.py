"""What the exporter makes of a context's exports: each export cleaned on its own, then
folded with the global fields, so a dropped value never takes an earlier good one with it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal

import pytest

import mona_middleware as mona
from mona_middleware.transports import InMemoryTransport
from mona_middleware.wsgi import MonaWSGIMiddleware


def configure(**options) -> InMemoryTransport:
    transport = InMemoryTransport()
    mona.configure(transport=transport, flush_interval=0.05, **options)
    return transport


def test_a_filtered_none_leaves_the_earlier_value():
    transport = configure(filter_none_fields=True)
    with mona.context("M", context_id="1"):
        mona.export({"k": 1})
        mona.export({"k": None})
    with mona.context("M", context_id="2"):
        mona.export({"k": 1}, action="ADD")
        mona.export({"k": None, "j": 2})
    assert mona.flush(5)
    assert transport.contexts() == {("M", "1"): {"k": 1}, ("M", "2"): {"k": [1], "j": 2}}


def test_an_unconvertible_value_leaves_the_earlier_value(caplog):
    transport = configure()
    with mona.context("M", context_id="1"):
        mona.export({"k": 1, "other": "x"})
        mona.export({"k": float("nan")})
        mona.export({"k": object(), "later": True})
    assert mona.flush(5)
    assert transport.contexts() == {("M", "1"): {"k": 1, "other": "x", "later": True}}
    assert mona.stats()["fields_dropped"] == 2
    assert "dropped field 'k'" in caplog.text


def test_without_filtering_a_none_overwrites_as_mona_sdk_would_send_it():
    transport = configure(filter_none_fields=False)
    with mona.context("M", context_id="1"):
        mona.export({"k": 1})
        mona.export({"k": None})
    assert mona.flush(5)
    assert transport.contexts() == {("M", "1"): {"k": None}}


def test_a_context_whose_every_field_is_invalid_is_counted_as_dropped():
    transport = configure()
    with mona.context("M", context_id="1"):
        mona.export({"k": float("inf")})
    assert mona.flush(5)
    assert transport.messages == []
    assert mona.stats()["dropped"] == {"no valid fields": 1}


def test_huge_numbers_are_floats_or_dropped_and_never_sink_the_batch():
    transport = configure()
    with mona.context("M", context_id="1"):
        mona.export(
            {
                "big": 10**30,
                "huge": 10**5000,
                "dec_huge": Decimal("1E+1000000"),
                "dec_int": Decimal("42"),
                "dec_frac": Decimal("0.25"),
                "ok": 7,
            }
        )
    assert mona.flush(5)
    assert transport.contexts() == {
        ("M", "1"): {"big": 1e30, "dec_int": 42, "dec_frac": 0.25, "ok": 7}
    }


def test_a_late_export_keeps_before_send_and_does_not_reset_global_fields():
    transport = configure(global_fields={"region": "eu"})
    exported = threading.Event()

    def redact(message):
        message["message"].pop("email", None)
        return message

    def app(environ, start_response):
        mona.export({"region": "us"})

        def later():
            mona.export({"email": "a@b", "late": 1})
            exported.set()

        thread = mona.MonaThread(target=later)
        environ["test.thread"] = thread
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = MonaWSGIMiddleware(app, context_class="REQ", before_send=redact, handle_sigterm=False)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    assert list(wrapped(environ, lambda *a: None)) == [b"ok"]
    environ["test.thread"].start()  # after the request's context closed
    assert exported.wait(5)
    assert mona.flush(5)
    [fields] = transport.contexts().values()
    assert fields["region"] == "us" and fields["late"] == 1 and "email" not in fields


def test_global_fields_alone_are_never_sent_for_a_context_whose_fields_all_failed():
    transport = configure(global_fields={"service": "api"})
    with mona.context("M", context_id="1"):
        mona.export({"k": float("nan")})
    with mona.context("M", context_id="2"):
        mona.export({"k": 2})
    assert mona.flush(5)
    assert transport.contexts() == {("M", "2"): {"service": "api", "k": 2}}
    stats = mona.stats()
    assert stats["dropped"] == {"no valid fields": 1} and stats["messages_sent"] == 1


def test_a_before_send_that_adds_what_json_cannot_carry_drops_only_that_message():
    transport = configure()

    def tag(message):
        if message["contextId"] == "bad":
            message["extra"] = {1, 2}  # beside "message": not converted for it
        return message

    def app(environ, start_response):
        mona.export({"n": 1})
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = MonaWSGIMiddleware(
        app, before_send=tag, context_id_header="X-Id", handle_sigterm=False
    )
    for request_id in ("good-1", "bad", "good-2"):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_ID": request_id}
        assert list(wrapped(environ, lambda *a: None)) == [b"ok"]
    assert mona.flush(5)
    assert sorted(i for _, i in transport.contexts()) == ["good-1", "good-2"]
    assert mona.stats()["dropped"] == {"before_send returned a message that is not JSON": 1}


class _Paused(Mapping):
    """Fields whose reading stops half-way until released: the export is caught in the
    middle while the request closes and the exporter takes the context."""

    def __init__(self, fields: dict) -> None:
        self.fields = fields
        self.reading = threading.Event()
        self.release = threading.Event()

    def __getitem__(self, key):
        return self.fields[key]

    def __len__(self) -> int:
        return len(self.fields)

    def __iter__(self):
        self.reading.set()
        assert self.release.wait(5)
        return iter(self.fields)


@pytest.mark.parametrize("action", [None, "ADD"])
def test_an_export_caught_by_the_close_is_stored_once(action):
    transport = configure()
    paused = _Paused({"late": 2})
    exported = []
    with mona.context("RACE", context_id="r1") as ctx:
        mona.export({"early": 1})
        thread = threading.Thread(target=lambda: exported.append(ctx.export(paused, action)))
        thread.start()
        assert paused.reading.wait(5)
    assert mona.flush(5)  # closed and taken by the exporter while the export is under way
    paused.release.set()
    thread.join(5)
    assert mona.flush(5) and exported == [True]
    expected = 2 if action is None else [2]  # an ADD stored twice would read [2, 2]
    assert transport.contexts() == {("RACE", "r1"): {"early": 1, "late": expected}}
    assert mona.stats()["dropped"] == {}


def test_global_fields_go_into_every_context(monkeypatch):
    monkeypatch.setenv("MONA_MIDDLEWARE_GLOBAL_FIELDS", "service: api, region: eu")
    transport = mona.transports.InMemoryTransport()
    mona.configure(transport=transport, flush_interval=0.05)
    with mona.context("A", context_id="1"):
        mona.export({"region": "us"})
    with mona.context("A", context_id="2"):
        mona.export({"n": 1}, action="ADD")
    assert mona.flush(5)
    assert transport.contexts() == {
        ("A", "1"): {"service": "api", "region": "us"},
        ("A", "2"): {"service": "api", "region": "eu", "n": [1]},
    }
