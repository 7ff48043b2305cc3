"""Validation of export batches: each bad message fails alone with its reason, the rest of
its batch is stored; a batch that cannot be read gets a top-level error.

A lone surrogate used to reach SQLite and 500 the whole batch; huge integers broke the
summaries, ``1e400`` decoded to infinity, and deep nesting could exhaust the recursion
limit downstream. Each is now a per-message failure in ``failure_reasons``.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from mona_middleware.collector import Collector
from mona_middleware.collector.validate import MAX_DEPTH

from ..helpers import bearer

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


def test_partial_failure_reports_each_bad_message_and_stores_the_rest(
    collector: Collector, send
) -> None:
    bad = [
        {"contextId": "x", "message": {"a": 1}},  # no arcClass
        {"arcClass": "", "message": {"a": 1}},
        {"arcClass": 7, "message": {"a": 1}},
        {"arcClass": "C", "message": {}},
        {"arcClass": "C", "message": [1]},
        {"arcClass": "C", "message": {"a": 1}, "action": "DELETE"},
        {"arcClass": "C", "message": {"a": 1}, "exportTimestamp": "yesterday"},
        {"arcClass": "C", "message": {"a": 1}, "exportTimestamp": True},
        {"arcClass": "C", "message": {"a": 1}, "contextId": 12},
        "not an object",
    ]
    good = [
        {"arcClass": "C", "contextId": "ok1", "message": {"a": 1}},
        {"arcClass": "C", "contextId": "ok2", "message": {"a": 2}, "exportTimestamp": 1.7e9},
        {"arcClass": "C", "contextId": "ok3", "message": {"a": 3}, "exportTimestamp": None},
        {"arcClass": "C", "contextId": "ok4", "message": {"a": 4},
         "exportTimestamp": "2025-01-02T03:04:05Z", "action": None},
    ]  # fmt: skip

    response = send(good[:2] + bad + good[2:])

    assert not response.ok
    body = response.json()
    assert body["failed"] == len(bad)
    assert set(body["failure_reasons"]) == {str(i) for i in range(2, 2 + len(bad))}
    assert all(isinstance(reason, str) and reason for reason in body["failure_reasons"].values())
    assert [c["id"] for c in collector.store.contexts("C")] == ["ok4", "ok3", "ok2", "ok1"]
    history = collector.store.context("C", "ok4")["history"]
    assert history[0]["timestamp"] == 1735787045.0


@pytest.mark.parametrize(
    ("body", "error_part"),
    [
        ([1, 2], "object"),
        ({"messages": []}, "userId"),
        ({"userId": "local", "messages": {"a": 1}}, "messages"),
        ({"userId": "local", "messages": [], "defaultAction": "REPLACE"}, "defaultAction"),
        ({"userId": "local", "messages": [], "sampleConfigName": 3}, "sampleConfigName"),
    ],
)
def test_unreadable_batch_gets_top_level_error(
    collector: Collector, token: str, body: object, error_part: str
) -> None:
    response = requests.post(collector.export_url, json=body, headers=bearer(token), timeout=5)

    assert response.status_code == 400
    assert error_part in response.json()["topLevelError"]


def test_message_without_context_id_gets_a_uuid(collector: Collector, send) -> None:
    response = send([{"arcClass": "C", "message": {"a": 1}}])

    assert response.status_code == 200
    [context] = collector.store.contexts("C")
    assert uuid.UUID(context["id"])


def test_sdk_extra_keys_are_accepted(collector: Collector, send) -> None:
    # mona_sdk sends every dataclass field, many of them null.
    message = {"arcClass": "C", "contextId": "s", "message": {"a": 1}, "action": None,
               "sampleConfigName": None, "exportTimestamp": None}  # fmt: skip

    assert send([message], sampleConfigName=None).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"userId": 5, "messages": []},
        {"userId": "local", "messages": "many"},
        {"userId": "local", "messages": None},
        "just a string",
        None,
    ],
)
def test_wrong_types_are_400(seeded: Collector, body: object) -> None:
    response = requests.post(
        seeded.noauth_url,
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["topLevelError"]
