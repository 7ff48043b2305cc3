"""``export_batch``: explicit messages, each with its own class, id and timestamp."""

from __future__ import annotations

import pytest

import mona_middleware as mona


@pytest.mark.parametrize("batch", [None, 42, {"message": {"a": 1}, "contextClass": "C"}, "ab"])
def test_export_batch_refuses_what_is_not_a_batch_without_raising(batch, memory, caplog):
    assert mona.export_batch(batch) == 0
    assert mona.stats()["exports_refused"] == 1
    assert (
        f"export_batch() takes an iterable of messages, got {type(batch).__name__}" in caplog.text
    )
    mona.configure(transport=memory, raise_export_exceptions=True)
    with pytest.raises(mona.MonaExportError, match="export_batch"):
        mona.export_batch(batch)
    assert mona.export_batch([{"message": {"a": 1}, "contextClass": "C"}]) == 1


def test_export_batch_takes_mona_messages_and_dicts(memory, caplog):
    sent = mona.export_batch(
        [
            mona.MonaMessage(
                message={"rows": 1}, contextClass="JOB", contextId="j1", exportTimestamp=1700000000
            ),
            {"message": {"rows": 2}, "contextClass": "JOB", "contextId": "j2", "action": "NEW"},
            {"message": {"tag": "x"}, "contextClass": "JOB", "contextId": "j1"},
            {"message": "not a dict", "contextClass": "JOB"},
            {"message": {"a": 1}},
        ],
        default_action="ADD",
    )
    assert sent == 3
    assert "message 3 skipped" in caplog.text and "message 4 skipped" in caplog.text
    assert mona.flush(5)
    by_id = {m["contextId"]: m for m in memory.messages if m["contextId"] == "j2"}
    assert by_id["j2"]["action"] == "NEW"
    assert memory.contexts() == {
        ("JOB", "j1"): {"rows": [1], "tag": ["x"]},
        ("JOB", "j2"): {"rows": 2},
    }
    assert memory.messages[0]["exportTimestamp"] == 1700000000


def test_export_batch_takes_mona_sdk_messages_and_look_alikes(memory):
    mona_sdk = pytest.importorskip("mona_sdk")

    class OwnMessage:  # a user's class with MonaSingleMessage's attributes
        def __init__(self, message, contextClass, contextId=None):
            self.message, self.contextClass, self.contextId = message, contextClass, contextId

    sent = mona.export_batch(
        [
            mona_sdk.MonaSingleMessage(
                message={"rows": 1}, contextClass="JOB", contextId="s1", sendTimestamp=1700000001
            ),
            mona_sdk.MonaSingleMessage(
                message={"MONARCH_ID": 7, "MONA_x": 1}, contextClass="JOB", contextId="s2",
                exportTimestamp=1700000002, action="ADD",
            ),
            OwnMessage({"rows": 3}, "JOB", "s3"),
            object(),
        ]
    )  # fmt: skip
    assert sent == 3
    assert mona.flush(5)
    assert memory.contexts() == {
        ("JOB", "s1"): {"rows": 1},
        ("JOB", "s2"): {"MONARCH_ID": [7], "MY_MONA_x": [1]},
        ("JOB", "s3"): {"rows": 3},
    }
    stamps = {m["contextId"]: m["exportTimestamp"] for m in memory.messages}
    assert stamps["s1"] == 1700000001 and stamps["s2"] == 1700000002
