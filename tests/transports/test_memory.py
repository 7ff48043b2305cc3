"""The in-memory transport: every batch as JSON carried it, folded as Mona stores it."""

from __future__ import annotations

import threading

from mona_middleware.transports import InMemoryTransport


def wire(context_id: str, fields: dict, action: str | None = None) -> dict:
    return {"message": fields, "contextId": context_id, "action": action, "arcClass": "C"}


def test_batches_are_kept_after_a_json_round_trip():
    transport = InMemoryTransport()
    result = transport.send([wire("1", {"pair": (1, 2), "n": 1})])
    assert result.sent == result.total == 1
    transport.send([wire("2", {"n": 2}), wire("1", {"n": 3}, "ADD")])

    assert len(transport.batches) == 2
    assert transport.messages[0]["message"] == {"pair": [1, 2], "n": 1}  # a tuple is a list
    assert [m["contextId"] for m in transport.messages] == ["1", "2", "1"]
    assert transport.contexts() == {("C", "1"): {"pair": [1, 2], "n": [1, 3]}, ("C", "2"): {"n": 2}}


def test_a_batch_changed_after_sending_is_not_changed_here():
    transport = InMemoryTransport()
    batch = [wire("1", {"n": 1})]
    transport.send(batch)
    batch[0]["message"]["n"] = 99
    assert transport.contexts() == {("C", "1"): {"n": 1}}


def test_wait_for_messages_returns_when_they_arrive_or_times_out():
    transport = InMemoryTransport()
    assert transport.wait_for_messages(1, timeout=0.05) is False
    sender = threading.Timer(0.05, lambda: transport.send([wire("1", {}), wire("2", {})]))
    sender.start()
    assert transport.wait_for_messages(2, timeout=5) is True
    sender.join(5)
    transport.clear()
    assert transport.messages == [] and transport.contexts() == {}
