"""What the user hears of a batch that did not land whole: the log line and the hook."""

from __future__ import annotations

from collections import Counter

from mona_middleware._export.outcome import TOO_LARGE, Outcome, log_failed, report
from mona_middleware.transports import SendResult, WireBatch


def test_the_error_handler_gets_every_reason_once_and_a_broken_one_is_contained(caplog):
    outcome = Outcome(total=5, sent=2, refused=Counter({"bad x": 2}), too_large=1, retries=3)
    outcome.last = SendResult(total=5, sent=2, failed=2, status=400, error="2 of 5 rejected")
    heard = []
    report(outcome, "rest", heard.append)
    assert heard == [
        {
            "status": 400,
            "total": 5,
            "sent": 2,
            "failed": 3,
            "errors": {"bad x": 2, TOO_LARGE: 1},
            "retries": 3,
            "retryable": False,
        }
    ]
    assert "3 of 5 message(s) not accepted by rest" in caplog.text
    report(outcome, "rest", lambda result: 1 / 0)
    assert "error_handler raised" in caplog.text


def test_an_unsent_batch_is_reported_as_retryable_with_the_last_error():
    outcome = Outcome(total=1, unsent=[WireBatch([{}])])
    outcome.last = SendResult.transient(1, "HTTP 503", status=503)
    heard = []
    report(outcome, "rest", heard.append)
    assert heard[0]["errors"] == {"HTTP 503": 1} and heard[0]["retryable"] is True


def test_log_failed_names_the_lost_messages(caplog):
    batch = WireBatch([{"message": {"secret_sauce": 1}}])
    log_failed(batch, Outcome(total=1))
    assert "secret_sauce" in caplog.text
