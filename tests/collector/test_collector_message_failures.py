"""One message the collector cannot store fails alone: the rest of its batch is stored.

A lone surrogate used to reach SQLite and 500 the whole batch; huge integers broke the
summaries, ``1e400`` decoded to infinity, and deep nesting could exhaust the recursion
limit downstream. Each is now a per-message failure in ``failure_reasons``.
"""

from __future__ import annotations

import json

import pytest
import requests

from mona_middleware.collector import Collector
from mona_middleware.collector.store import Store
from mona_middleware.collector.validate import MAX_DEPTH, Message

GOOD = {"arcClass": "C", "contextId": "good", "message": {"a": 1}}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# Raw JSON text of one message, since some of these cannot be written with json.dumps.
BAD_MESSAGES = {
    "surrogate in arcClass": '{"arcClass": "\\ud800", "contextId": "x", "message": {"a": 1}}',
    "surrogate in contextId": '{"arcClass": "C", "contextId": "\\udfff", "message": {"a": 1}}',
    "surrogate in a key": '{"arcClass": "C", "contextId": "x", "message": {"\\ud800k": 1}}',
    "surrogate in a value": '{"arcClass": "C", "contextId": "x", "message": {"a": "\\ud800"}}',
    "surrogate deep inside": (
        '{"arcClass": "C", "contextId": "x", "message": {"a": [{"b": {"\\udc00": 1}}]}}'
    ),
    "integer beyond 64 bits": (
        '{"arcClass": "C", "contextId": "x", "message": {"a": ' + "9" * 400 + "}}"
    ),
    "infinity from 1e400": '{"arcClass": "C", "contextId": "x", "message": {"a": [1e400]}}',
    "deeply nested": (
        '{"arcClass": "C", "contextId": "x", "message": {"a": ' + _nested(MAX_DEPTH + 5) + "}}"
    ),
}


def _post(collector: Collector, token: str, messages: list[str]) -> requests.Response:
    body = f'{{"userId": "{collector.user_id}", "messages": [{", ".join(messages)}]}}'
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return requests.post(collector.export_url, data=body.encode(), headers=headers, timeout=5)


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_a_message_that_cannot_be_stored_fails_alone(
    collector: Collector, token: str, case: str
) -> None:
    response = _post(collector, token, [json.dumps(GOOD), BAD_MESSAGES[case], json.dumps(GOOD)])

    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["total"], body["failed"]) == (3, 1)
    assert list(body["failure_reasons"]) == ["1"]
    assert body["batchId"]
    assert collector.store.message_count() == 2
    assert collector.store.context("C", "x") is None
    assert collector.store.context("C", "good")["messages"] == 2
    for path in ("/api/classes", "/api/contexts", "/api/summary?class=C", "/api/contexts/C/good"):
        assert requests.get(collector.url + path, timeout=5).status_code == 200, path


def test_nesting_up_to_the_limit_is_stored(collector: Collector, token: str) -> None:
    deep = '{"arcClass": "C", "contextId": "x", "message": {"a": ' + _nested(MAX_DEPTH - 1) + "}}"

    response = _post(collector, token, [deep])

    assert response.status_code == 200, response.text
    assert requests.get(collector.url + "/api/contexts/C/x", timeout=5).status_code == 200


def test_the_reasons_say_what_is_wrong(collector: Collector, token: str) -> None:
    cases = ["surrogate in arcClass", "integer beyond 64 bits", "deeply nested"]

    response = _post(collector, token, [BAD_MESSAGES[case] for case in cases])

    reasons = response.json()["failure_reasons"]
    assert "arcClass is not valid UTF-8" in reasons["0"]
    assert "64 bits" in reasons["1"]
    assert f"{MAX_DEPTH} levels" in reasons["2"]


def test_an_unstorable_message_given_to_the_store_is_rolled_back_alone() -> None:
    # Past validation (a Python caller): a key JSON cannot write. Only it is undone.
    store = Store()
    good = Message(0, "C", "1", {"a": 1}, "OVERWRITE", None)
    bad = Message(1, "C", "2", {("not", "a", "string"): 1}, "OVERWRITE", None)
    later = Message(2, "C", "1", {"b": 2}, "OVERWRITE", None)

    batch_id, failures = store.add_batch([good, bad, later])

    assert batch_id and list(failures) == [1]
    assert store.message_count() == 2
    assert store.context("C", "1")["fields"] == {"a": 1, "b": 2}
    assert store.context("C", "2") is None
    store.close()
