"""Getting a batch to the backend: retries, Retry-After, the error handler, rate-limited
logging, and a transport that raises."""

from __future__ import annotations

import time

import pytest

import mona_middleware as mona
from mona_middleware.transports import SendResult, Transport

from ..conftest import rest_options
from ..helpers import export_contexts
from ..mona_server import MonaTestServer, retry_after_date

FAST_RETRIES = {"retry_backoff": 0.05, "retry_max_backoff": 0.5}


def export_arrivals(server: MonaTestServer) -> list[float]:
    return [r.arrived for r in server.export_requests()]


def test_a_30_second_outage_loses_nothing_and_sends_nothing_twice(mona_server, tmp_path):
    mona.configure(
        **rest_options(
            mona_server, retry_max_backoff=2.0, retry_max_time=20, spool_dir=str(tmp_path / "spool")
        )
    )
    export_contexts(1, prefix="warmup")
    assert mona.flush(5)
    mona_server.stop_listening()
    outage_ends = time.monotonic() + 30
    sent = 0
    while time.monotonic() < outage_ends:  # a steady trickle of requests through the outage
        export_contexts(10, prefix=f"o{sent}-")
        sent += 10
        time.sleep(0.25)
    mona_server.start_listening()
    export_contexts(1, prefix="after")  # fresh traffic after the outage
    assert mona.flush(30)
    assert mona_server.wait_for_messages(sent + 2, timeout=60)
    ids = [m["contextId"] for m in mona_server.messages()]
    assert len(ids) == len(set(ids)) == sent + 2  # every context once, none twice
    stats = mona.stats()
    assert stats["dropped"] == {} and stats["retries"] > 0


@pytest.mark.parametrize("header", ["2", "date"])
def test_retry_after_is_honoured_even_by_flush(mona_server, header):
    mona.configure(**rest_options(mona_server, **FAST_RETRIES))
    value = "2" if header == "2" else retry_after_date(2.5)
    mona_server.respond_with(503, headers={"Retry-After": value}, times=1)
    export_contexts(1)
    assert mona.flush(10)  # flush wakes backoffs, but must not cut a Retry-After short
    first, second = export_arrivals(mona_server)
    assert second - first >= (2.0 if header == "2" else 1.0)
    assert len(mona_server.messages()) == 1


def test_retry_after_holds_back_every_batch_not_only_the_refused_one(mona_server):
    mona.configure(**rest_options(mona_server, batch_size=1, sender_threads=2, **FAST_RETRIES))
    mona_server.respond_with(429, headers={"Retry-After": "2"}, times=1)
    export_contexts(1, prefix="first")
    deadline = time.monotonic() + 5
    while mona.stats()["retries"] < 1 and time.monotonic() < deadline:  # the 429 is read
        time.sleep(0.01)
    refused_at = export_arrivals(mona_server)[0]
    export_contexts(5, prefix="more")  # other batches, for the other sender too
    assert mona.flush(15)
    # With both senders waiting, a batch may go to the spool, resent right after.
    assert mona_server.wait_for_messages(6, timeout=10)
    later = export_arrivals(mona_server)[1:]
    assert later and min(later) - refused_at >= 2.0  # no request of any batch before 2 s
    assert sorted(m["contextId"] for m in mona_server.messages()) == sorted(
        ["first0"] + [f"more{i}" for i in range(5)]
    )


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "soon"])
def test_an_unusable_retry_after_falls_back_to_backoff(mona_server, value):
    mona.configure(**rest_options(mona_server, **FAST_RETRIES))
    mona_server.respond_with(503, headers={"Retry-After": value}, times=2)
    export_contexts(1)
    started = time.process_time()
    assert mona.flush(10)
    assert time.process_time() - started < 1.0  # a wait of nan seconds would spin the CPU
    assert len(mona_server.messages()) == 1 and mona.stats()["retries"] == 2


@pytest.mark.parametrize(
    "status,body",
    [
        (429, {"topLevelError": "slow down"}),
        (503, {"topLevelError": "maintenance"}),
        (503, {"failed": 1, "failure_reasons": {"0": "unavailable"}}),
    ],
)
def test_a_retryable_status_is_retried_whatever_its_json_says(mona_server, status, body):
    mona.configure(**rest_options(mona_server, **FAST_RETRIES))
    mona_server.respond_with(status, body=body, times=1)
    export_contexts(1)
    assert mona.flush(10)
    assert len(mona_server.messages()) == 1
    assert mona.stats()["retries"] == 1 and mona.stats()["dropped"] == {}


def test_429_and_5xx_are_retried_other_4xx_are_not(mona_server):
    mona.configure(**rest_options(mona_server, **FAST_RETRIES))
    for status in (429, 500, 502, 408):
        mona_server.respond_with(status, times=1)
        export_contexts(1, prefix=f"s{status}-")
        assert mona.flush(10)
    assert len(mona_server.messages()) == 4
    mona_server.respond_with(422, body={"errors": ["schema mismatch"]}, times=1)
    export_contexts(1, prefix="bad")
    assert mona.flush(10)
    stats = mona.stats()
    assert stats["retries"] == 4
    assert stats["dropped"] == {"rejected by the backend": 1}
    assert stats["failure_reasons"] == {'HTTP 422: ["schema mismatch"]': 1}  # the server's reason
    assert len(mona_server.export_requests()) == 4 * 2 + 1


def test_error_handler_hears_about_each_failed_batch(mona_server):
    results = []
    mona.configure(
        **rest_options(
            mona_server,
            error_handler=results.append,
            max_retries=1,
            retry_backoff=0.01,
            spool=False,
        )
    )
    mona_server.respond_with(400, body={"failed": 1, "failure_reasons": {"0": "bad x"}}, times=1)
    with mona.context("E", context_id="e1"):
        mona.export({"a": 1})
    with mona.context("E", context_id="e2"):
        mona.export({"a": 2})
    assert mona.flush(5)
    mona_server.respond_with(503, times=2)
    with mona.context("E", context_id="e3"):
        mona.export({"a": 3})
    assert mona.flush(5)
    assert results == [
        {
            "status": 400,
            "total": 2,
            "sent": 1,
            "failed": 1,
            "errors": {"bad x": 1},
            "retries": 0,
            "retryable": False,
        },
        {
            "status": 503,
            "total": 1,
            "sent": 0,
            "failed": 1,
            "errors": {"HTTP 503": 1},
            "retries": 1,
            "retryable": True,
        },
    ]


def test_a_failing_error_handler_is_contained(mona_server, caplog):
    mona.configure(
        **rest_options(mona_server, error_handler=lambda result: 1 / 0, spool=False, max_retries=0)
    )
    mona_server.respond_with(503, times=1)
    with mona.context("E"):
        mona.export({"a": 1})
    assert mona.flush(5)
    assert "error_handler raised" in caplog.text


def test_repeated_errors_are_rate_limited_and_counted(mona_server, caplog):
    mona.configure(**rest_options(mona_server, spool=False, batch_size=1, max_retries=0))
    mona_server.respond_with(503)
    for n in range(50):
        with mona.context("FLOOD", context_id=str(n)):
            mona.export({"n": n})
    assert mona.flush(10)
    lines = [r for r in caplog.records if "not accepted by rest" in r.getMessage()]
    assert len(lines) == 1
    assert mona.stats()["dropped"] == {"send failed: HTTP 503": 50}


class ExplodingTransport(Transport):
    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, messages):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("bug in a transport")
        return SendResult.ok(len(messages))


def test_a_failing_transport_is_logged_retried_and_the_thread_survives(caplog):
    transport = ExplodingTransport()
    mona.configure(transport=transport, flush_interval=0.05, sender_threads=1)
    export_contexts(1)
    assert mona.flush(5)
    export_contexts(2, prefix="again")
    assert mona.flush(5)
    stats = mona.stats()
    assert stats["messages_sent"] == 3  # the failed send was retried
    assert stats["retries"] == 1 and stats["dropped"] == {}
    assert "bug in a transport" in caplog.text


def test_should_log_failed_messages_logs_what_mona_refused(mona_server, caplog, monkeypatch):
    monkeypatch.setenv("MONA_SDK_SHOULD_LOG_FAILED_MESSAGES", "true")
    mona.configure(**rest_options(mona_server, spool=False))
    mona_server.respond_with(
        400, {"failed": 1, "failure_reasons": {"1": "bad"}}, times=1
    )  # fmt: skip
    mona.export_batch(
        [
            {"message": {"good": 1}, "contextClass": "C", "contextId": "a"},
            {"message": {"secret_sauce": 2}, "contextClass": "C", "contextId": "b"},
        ]
    )
    assert mona.flush(5)
    assert "failed to send the following to Mona" in caplog.text
    line = next(r.getMessage() for r in caplog.records if "following" in r.getMessage())
    assert "secret_sauce" in line


def test_failed_messages_are_not_logged_by_default(mona_server, caplog):
    mona.configure(**rest_options(mona_server, spool=False, max_retries=0))
    mona_server.stop_listening()
    mona.export_batch([{"message": {"secret_sauce": 2}, "contextClass": "C"}])
    mona.flush(5)
    assert "secret_sauce" not in caplog.text


# -- idempotency keys, ambiguous failures, sizes ----------------------------------------


def test_every_post_carries_an_idempotency_key_the_same_on_each_retry(mona_server):
    mona.configure(**rest_options(mona_server, batch_size=2, **FAST_RETRIES))
    mona_server.respond_with(503, times=2)
    export_contexts(2, prefix="a")
    assert mona.flush(10)
    export_contexts(2, prefix="b")
    assert mona.flush(10)
    keys = [r.header("Idempotency-Key") for r in mona_server.export_requests()]
    assert len(keys) == 4 and all(keys)
    assert keys[0] == keys[1] == keys[2]  # two 503s and the success: one batch, one key
    assert keys[3] != keys[0]  # the next batch has its own


@pytest.mark.parametrize("honoured", [False, True])
def test_a_timeout_then_a_success_is_stored_once_or_counted_as_possibly_duplicated(
    mona_server, caplog, honoured
):
    """The backend stores the batch after the client gave up waiting, then the retry
    comes: a backend that honours the key stores it once (and says so); one that does
    not stores it twice, and the count and the log say so."""
    mona_server.honour_idempotency = honoured
    mona.configure(**rest_options(mona_server, http_timeout=0.5, spool=False, **FAST_RETRIES))
    mona_server.hang(1.5, times=1)  # answers after the client's timeout, and stores
    export_contexts(50, prefix="slow")
    assert mona.flush(20)
    mona_server.wait_idle(10)
    stats = mona.stats()
    assert stats["retries"] >= 1 and stats["dropped"] == {}
    counts = mona_server.context_counts()
    assert len(counts) == 50
    if honoured:
        assert set(counts.values()) == {1}
        assert stats["possibly_duplicated"] == 0
    else:
        assert set(counts.values()) == {2}
        assert stats["possibly_duplicated"] == 50
        assert "may store them twice" in caplog.text


def test_a_refused_connection_is_not_ambiguous(mona_server):
    mona.configure(**rest_options(mona_server, **FAST_RETRIES))
    export_contexts(1, prefix="warm")
    assert mona.flush(5)
    mona_server.stop_listening()
    export_contexts(3, prefix="down")
    time.sleep(0.3)  # a few refused sends
    mona_server.start_listening()
    assert mona.flush(20)
    stats = mona.stats()
    assert stats["retries"] >= 1 and stats["possibly_duplicated"] == 0
    assert sorted(m["contextId"] for m in mona_server.messages()) == [
        "down0", "down1", "down2", "warm0"
    ]  # fmt: skip


class LimitedBackend(Transport):
    """A backend that refuses any request body over ``limit`` bytes as a whole (HTTP 413),
    as a proxy in front of Mona does, and stores the rest in memory."""

    name = "limited"

    def __init__(self, limit: int) -> None:
        from mona_middleware.transports import InMemoryTransport

        self.limit = limit
        self.store = InMemoryTransport()
        self.bodies: list[int] = []

    def send(self, messages):
        import json

        size = len(json.dumps(list(messages)))
        self.bodies.append(size)
        if size > self.limit:
            return SendResult.rejected(len(messages), "HTTP 413: request too large", status=413)
        return self.store.send(messages)


def test_a_413_splits_the_batch_down_to_the_one_message_too_large(caplog):
    backend = LimitedBackend(limit=20_000)
    mona.configure(transport=backend, flush_interval=60, batch_size=200)
    for n in range(200):
        with mona.context("DOC", context_id=f"d{n}"):
            mona.export({"n": n, "text": "x" * (30_000 if n == 137 else 50)})
    assert mona.flush(30)
    stored = {cid for (_, cid) in backend.store.contexts()}
    assert stored == {f"d{n}" for n in range(200)} - {"d137"}  # only the offender lost
    stats = mona.stats()
    assert stats["dropped"] == {"too large for the backend (HTTP 413)": 1}
    assert stats["messages_sent"] == 199
    assert "refused a DOC message as too large" in caplog.text


def test_an_oversized_field_costs_only_itself(mona_server, caplog):
    """One context of 200 carries an 11 MB field: the field is dropped and named, every
    context arrives."""
    mona.configure(**rest_options(mona_server, max_message_bytes=1024 * 1024, batch_size=200))
    for n in range(200):
        with mona.context("PROMPT", context_id=f"p{n}"):
            fields = {"n": n, "model": "v3"}
            if n == 42:
                fields["document"] = "y" * (11 * 1024 * 1024)
            mona.export(fields)
    assert mona.flush(30)
    contexts = mona_server.contexts()
    assert len(contexts) == 200
    assert contexts[("PROMPT", "p42")] == {"n": 42, "model": "v3"}
    stats = mona.stats()
    assert stats["fields_dropped"] == 1 and stats["dropped"] == {}
    assert "field 'document' of a PROMPT message" in caplog.text
