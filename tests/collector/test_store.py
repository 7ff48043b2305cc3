"""OVERWRITE/ADD/NEW folding as stored by the collector, across batches, in arrival order;
a message the store cannot write is rolled back alone."""

from __future__ import annotations

import copy
import threading
from typing import Any

import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from mona_middleware.aggregate import apply_message
from mona_middleware.collector import Collector
from mona_middleware.collector.store import Store, fold
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


SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b"])
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
OPS = st.lists(
    st.tuples(
        st.sampled_from(["ADD", "OVERWRITE", "NEW"]),
        st.dictionaries(st.sampled_from(["x", "y", "z"]), VALUES, min_size=1, max_size=3),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_the_linear_fold_is_monas_fold(ops: list[tuple[str, dict[str, Any]]]) -> None:
    """``fold`` (ADD appends in place) leaves every record as ``apply_message`` does,
    and never changes the messages it was given."""
    sent = copy.deepcopy(ops)
    expected: dict[str, Any] = {}
    folded: dict[str, Any] = {}
    for action, fields in ops:
        apply_message(expected, copy.deepcopy(fields), action)
        fold(folded, fields, action)

    assert folded == expected
    assert ops == sent


@settings(max_examples=50, deadline=None)
@given(OPS)
def test_a_batch_stores_what_folding_its_messages_one_by_one_gives(ops) -> None:
    store = Store()
    messages = [
        Message(i, "C", "1", fields, action, None) for i, (action, fields) in enumerate(ops)
    ]
    expected: dict[str, Any] = {}
    for action, fields in copy.deepcopy(ops):
        apply_message(expected, fields, action)

    store.ingest(messages[: len(messages) // 2])
    store.ingest(messages[len(messages) // 2 :])

    found = store.context("C", "1")
    assert (found["fields"] if found else {}) == (expected if ops else {})
    assert store.message_count() == len(ops)
    store.close()
