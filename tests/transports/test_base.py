"""The transport interface: what a send returns, and the hooks a transport may leave alone."""

from __future__ import annotations

from collections import Counter

import pytest

from mona_middleware.transports import SendResult, Transport


def test_a_result_says_what_landed_and_whether_a_retry_may_help():
    ok = SendResult.ok(3, status=200)
    assert (ok.total, ok.sent, ok.failed, ok.retryable, ok.status) == (3, 3, 0, False, 200)
    assert ok.failure_reasons == Counter() and ok.error is None

    later = SendResult.transient(4, "HTTP 503", status=503, retry_after=2.0)
    assert (later.sent, later.failed, later.retryable) == (0, 0, True)
    assert (later.error, later.status, later.retry_after) == ("HTTP 503", 503, 2.0)

    refused = SendResult.rejected(5, "schema mismatch", status=422)
    assert (refused.sent, refused.failed, refused.retryable) == (0, 5, False)
    assert refused.failure_reasons == Counter({"schema mismatch": 5})
    assert refused.error == "schema mismatch" and refused.status == 422


def test_results_do_not_share_their_reasons():
    first, second = SendResult(total=1), SendResult(total=1)
    first.failure_reasons["x"] += 1
    assert second.failure_reasons == Counter()


def test_a_transport_needs_only_send():
    class Sink(Transport):
        name = "sink"

        def __init__(self) -> None:
            self.sent: list[dict] = []

        def send(self, messages):
            self.sent.extend(messages)
            return SendResult.ok(len(messages))

    sink = Sink()
    assert sink.send([{"a": 1}]).sent == 1 and sink.sent == [{"a": 1}]
    sink.close()  # the optional hooks do nothing by default
    sink.after_fork()
    assert sink.describe() == "sink" and sink.spool_key() == "sink"

    class Incomplete(Transport):
        pass

    with pytest.raises(TypeError):
        Incomplete()
