"""Mona's aggregation of wire messages into context records, applied locally."""

from __future__ import annotations

from mona_middleware.aggregate import aggregate, apply_message


def test_aggregate_honours_default_action_and_classes():
    messages = [
        {"arcClass": "A", "contextId": "1", "message": {"x": 1}},
        {"arcClass": "A", "contextId": "1", "message": {"x": 2}},
        {"arcClass": "B", "contextId": "1", "message": {"x": 3}, "action": "OVERWRITE"},
    ]
    assert aggregate(messages, default_action="ADD") == {
        ("A", "1"): {"x": [1, 2]},
        ("B", "1"): {"x": 3},
    }


def test_apply_message_folds_each_action_as_mona_does():
    record: dict = {}
    apply_message(record, {"a": 1, "b": 1}, None)  # OVERWRITE when no action is given
    apply_message(record, {"b": 2, "n": 1}, "ADD")  # a single value becomes a list
    apply_message(record, {"n": 2}, "ADD")
    apply_message(record, {"a": 5}, "OVERWRITE")
    assert record == {"a": 5, "b": [1, 2], "n": [1, 2]}
    apply_message(record, {"c": 3}, "NEW")  # the record starts over
    assert record == {"c": 3}


def test_aggregate_reads_mona_sdks_key_and_skips_empty_messages():
    messages = [
        {"contextClass": "SDK", "contextId": "1", "message": {"a": 1}},
        {"arcClass": "SDK", "contextId": "1", "message": None},
        {"arcClass": "SDK", "contextId": "2", "message": {"b": 2}},
    ]
    assert aggregate(messages) == {("SDK", "1"): {"a": 1}, ("SDK", "2"): {"b": 2}}
    assert list(aggregate(reversed(messages))) == [("SDK", "2"), ("SDK", "1")]  # first seen
