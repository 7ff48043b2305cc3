"""Mona's protocol as data: the actions in Mona's spelling, and the wire message's keys."""

from __future__ import annotations

import re

import pytest

from mona_middleware._util.protocol import ACTIONS, check_action, wire_message

# mona_sdk's MonaSingleMessage as it goes on the wire: these keys, in this order.
WIRE_KEYS = [
    "message",
    "contextId",
    "action",
    "sampleConfigName",
    "exportTimestamp",
    "sendTimestamp",
    "arcClass",
]


@pytest.mark.parametrize(
    ("given", "spelled"),
    [(None, None), ("add", "ADD"), ("New", "NEW"), ("OVERWRITE", "OVERWRITE")],
)
def test_an_action_is_read_in_any_case_and_spelled_as_mona_does(given, spelled):
    assert check_action(given) == spelled
    assert spelled is None or spelled in ACTIONS


@pytest.mark.parametrize(
    "bad", ["APPEND", "", " add", 1, ["ADD"]], ids=["unknown", "empty", "space", "int", "list"]
)
def test_anything_else_is_refused_naming_the_value(bad):
    with pytest.raises(ValueError, match=re.escape(f"got {bad!r}")):
        check_action(bad)


def test_the_wire_message_has_mona_sdks_keys_in_its_order():
    message = wire_message("MODEL", "r-1", {"score": 0.5}, 1700000000, "ADD")
    assert list(message) == WIRE_KEYS
    assert message == {
        "message": {"score": 0.5},
        "contextId": "r-1",
        "action": "ADD",
        "sampleConfigName": None,
        "exportTimestamp": 1700000000,
        "sendTimestamp": None,
        "arcClass": "MODEL",
    }
