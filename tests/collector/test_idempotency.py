"""``Idempotency-Key`` on export POSTs: a batch retried with the same key (an exporter
that timed out after the collector stored it) is stored once and answered as the first
time. Keys are kept per user id, in the database (a restart between two tries changes
nothing), for ``KEY_TTL`` (24 h) and at most ``MAX_KEYS`` per user id."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests

from mona_middleware.collector import Collector, store
from mona_middleware.collector.validate import Message
from mona_middleware.config import MonaConfig
from mona_middleware.transports.base import WireBatch
from mona_middleware.transports.rest import MonaRestTransport


def _post(collector: Collector, key: str | None, messages: list, user: str = "local"):
    headers = {"Authorization": "Bearer any"}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {"userId": user, "messages": messages}
    return requests.post(collector.export_url, json=body, headers=headers, timeout=10)


ADDS = [
    {"arcClass": "C", "contextId": "1", "action": "ADD", "message": {"v": 1}},
    {"arcClass": "C", "contextId": "1", "action": "ADD", "message": {"v": 2}},
]


@pytest.fixture
def local() -> Collector:
    with Collector() as running:
        yield running


def test_a_retried_batch_is_stored_once_and_answered_the_same(local: Collector) -> None:
    first = _post(local, "batch-7f3a", ADDS)
    again = _post(local, "batch-7f3a", ADDS)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()  # the same batchId: the first answer
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.headers["Idempotent-Replayed"] == "false"  # keys are honoured here
    assert local.store.message_count() == 2
    assert local.store.context("C", "1")["fields"] == {"v": [1, 2]}  # not [1, 2, 1, 2]


def test_without_a_key_or_with_another_key_a_batch_is_stored_again(local: Collector) -> None:
    assert "Idempotent-Replayed" not in _post(local, None, ADDS).headers
    _post(local, None, ADDS)
    _post(local, "a", ADDS)
    _post(local, "b", ADDS)

    assert local.store.context("C", "1")["fields"]["v"] == [1, 2] * 4


def test_keys_are_per_user_id(local: Collector) -> None:
    _post(local, "same", ADDS, user="one")
    _post(local, "same", ADDS, user="two")
    _post(local, "same", ADDS, user="two")

    assert local.store.message_count("one") == local.store.message_count("two") == 2


def test_a_partly_refused_batch_is_answered_with_the_same_failures(local: Collector) -> None:
    messages = [*ADDS, {"arcClass": "", "message": {"x": 1}}]

    first = _post(local, "partly", messages)
    again = _post(local, "partly", messages)

    assert first.status_code == again.status_code == 400
    assert again.json() == first.json() and list(first.json()["failure_reasons"]) == ["2"]
    assert local.store.message_count() == 2


def test_a_batch_that_stored_nothing_keeps_no_key(local: Collector) -> None:
    bad = [{"arcClass": "", "message": {"x": 1}}]
    assert _post(local, "k", bad).status_code == 400

    assert _post(local, "k", ADDS).status_code == 200  # the key was free: this is stored
    assert local.store.message_count() == 2


def test_concurrent_retries_store_the_batch_once(local: Collector) -> None:
    answers: list[dict] = []

    def retry() -> None:
        answers.append(_post(local, "racing", ADDS).json())

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(answers) == 8 and len({answer["batchId"] for answer in answers}) == 1
    assert local.store.message_count() == 2


def test_a_key_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "c.sqlite3")
    with Collector(db=db) as first:
        answer = _post(first, "before-restart", ADDS).json()
    with Collector(db=db) as second:
        again = _post(second, "before-restart", ADDS)
        assert again.json() == answer and again.headers["Idempotent-Replayed"] == "true"
        assert second.store.message_count() == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there", "ünïcode"])
def test_a_malformed_key_is_refused(local: Collector, key: str) -> None:
    headers = {"Authorization": "Bearer any", "Idempotency-Key": key.encode("utf-8")}
    response = requests.post(
        local.export_url, json={"userId": "local", "messages": ADDS}, headers=headers, timeout=10
    )

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["topLevelError"]
    assert local.store.message_count() == 0


def test_a_quoted_key_is_the_same_key(local: Collector) -> None:
    _post(local, '"quoted"', ADDS)
    _post(local, "quoted", ADDS)

    assert local.store.message_count() == 2


def test_keys_are_bounded_in_number_and_age(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "MAX_KEYS", 3)
    kept = store.Store()
    batch = [Message(0, "C", "1", {"v": 1}, "ADD", None)]
    for key in ("k1", "k2", "k3", "k4"):
        kept.ingest(batch, key=key)

    assert kept.ingest(batch, key="k4").replayed  # the newest keys are kept
    assert not kept.ingest(batch, key="k1").replayed  # the oldest was forgotten: stored
    assert kept.message_count() == 5
    kept.close()

    aged = store.Store()
    aged.ingest(batch, key="old", arrived=1.0)  # stored a day and more ago
    assert not aged.ingest(batch, key="old").replayed
    assert aged.ingest(batch, key="old").replayed  # the new one counts from now
    assert aged.message_count() == 2
    aged.close()


def test_our_exporters_resend_of_a_batch_is_stored_once(local: Collector) -> None:
    """The real REST transport: each send of one ``WireBatch`` carries its key."""
    config = MonaConfig(
        api_key=local.api_key,
        secret=local.secret,
        user_id=local.user_id,
        auth_api_token_url=local.token_url,
        refresh_token_url=local.refresh_url,
        rest_api_url=local.export_url,
        http_timeout=5,
    )
    transport = MonaRestTransport(config)
    batch = WireBatch([
        {"arcClass": "C", "contextId": "1", "action": "ADD", "message": {"v": 1}},
        {"arcClass": "C", "contextId": "2", "message": {"w": 2}},
    ])  # fmt: skip
    try:
        first = transport.send(batch)
        again = transport.send(batch)  # as after a timeout the backend had survived
        other = transport.send(WireBatch(list(batch)))  # equal messages, another batch
    finally:
        transport.close()

    assert (first.sent, first.replayed) == (2, False)
    assert (again.sent, again.replayed) == (2, True)
    assert other.replayed is False
    assert local.store.context("C", "1")["fields"] == {"v": [1, 1]}  # twice, not three times
    assert local.store.message_count() == 4
