"""OVERWRITE/ADD/NEW folding as stored by the collector, across batches, in arrival order;
a message the store cannot write is rolled back alone."""

from __future__ import annotations

import threading
from typing import Any

import requests

from mona_middleware.collector import Collector
from mona_middleware.collector.store import Store
from mona_middleware.collector.validate import Message


def _msg(context_id: str, fields: dict[str, Any], action: str | None = None) -> dict[str, Any]:
    return {"arcClass": "C", "contextId": context_id, "message": fields, "action": action}


def _fields(collector: Collector, context_id: str) -> dict[str, Any]:
    return collector.store.context("C", context_id)["fields"]


def test_overwrite_merges_fields(collector: Collector, send) -> None:
    send([_msg("1", {"a": 1, "b": "x"})])
    send([_msg("1", {"b": "y", "c": True}, "OVERWRITE")])

    assert _fields(collector, "1") == {"a": 1, "b": "y", "c": True}


def test_add_of_the_same_field_twice_makes_a_list(collector: Collector, send) -> None:
    send([_msg("1", {"latency": 12}, "ADD"), _msg("1", {"latency": 15}, "ADD")])

    assert _fields(collector, "1") == {"latency": [12, 15]}


def test_add_onto_an_overwritten_value_appends(collector: Collector, send) -> None:
    send([_msg("1", {"tag": "a"})])
    send([_msg("1", {"tag": "b"}, "ADD")])

    assert _fields(collector, "1") == {"tag": ["a", "b"]}


def test_new_after_overwrite_resets_the_record(collector: Collector, send) -> None:
    send([_msg("1", {"a": 1, "b": 2}), _msg("1", {"c": 3}, "NEW")])

    detail = collector.store.context("C", "1")
    assert detail["fields"] == {"c": 3}
    assert [m["action"] for m in detail["history"]] == ["OVERWRITE", "NEW"]
    assert detail["messages"] == 2


def test_default_action_applies_only_to_messages_without_one(collector: Collector, send) -> None:
    send([_msg("1", {"n": 1})])
    response = send(
        [_msg("1", {"n": 2}), _msg("1", {"m": 9}, "OVERWRITE"), _msg("1", {"n": 3})],
        defaultAction="ADD",
    )

    assert response.status_code == 200
    assert _fields(collector, "1") == {"n": [1, 2, 3], "m": 9}
    history = collector.store.context("C", "1")["history"]
    assert [m["action"] for m in history] == ["OVERWRITE", "ADD", "OVERWRITE", "ADD"]


def test_contexts_of_different_classes_are_separate(collector: Collector, send) -> None:
    send([_msg("1", {"a": 1}), {"arcClass": "D", "contextId": "1", "message": {"a": 2}}])

    assert _fields(collector, "1") == {"a": 1}
    assert collector.store.context("D", "1")["fields"] == {"a": 2}
    assert collector.store.classes()["C"]["contexts"] == 1


def test_concurrent_adds_lose_nothing(collector: Collector, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    errors: list[BaseException] = []

    def worker(worker_id: int) -> None:
        with requests.Session() as session:
            for i in range(10):
                body = {
                    "userId": "local",
                    "messages": [_msg("hot", {"v": worker_id * 100 + i}, "ADD")],
                }
                try:
                    session.post(
                        collector.export_url, json=body, headers=headers, timeout=5
                    ).raise_for_status()
                except Exception as exc:  # surfaced by the assert below
                    errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    assert collector.wait_for_messages(80, timeout=5)
    values = _fields(collector, "hot")["v"]
    assert sorted(values) == sorted(w * 100 + i for w in range(8) for i in range(10))
    history = collector.store.context("C", "hot")["history"]
    assert [m["fields"]["v"] for m in history] == values  # folded in arrival order


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
