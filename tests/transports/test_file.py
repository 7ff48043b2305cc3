"""The JSONL file transport: what it writes replays into the same contexts."""

from __future__ import annotations

import json

import mona_middleware as mona
from mona_middleware.transports import InMemoryTransport, JsonlFileTransport


def test_jsonl_file_is_replayable_into_the_same_contexts(tmp_path, mona_server):
    mona.configure(
        transport="file", file_path=str(tmp_path / "out" / "m.jsonl"), flush_interval=0.05
    )
    with mona.context("A", context_id="1"):
        mona.export({"x": 1})
        mona.export({"n": 1}, action="ADD")
        mona.export({"n": 2}, action="ADD")
    assert mona.flush(5)
    messages = [
        json.loads(line) for line in (tmp_path / "out" / "m.jsonl").read_text().splitlines()
    ]
    memory = InMemoryTransport()
    memory.send(messages)
    assert memory.contexts() == {("A", "1"): {"x": 1, "n": [1, 2]}}


def test_each_batch_is_appended_as_lines_and_a_failure_is_a_result(tmp_path):
    path = tmp_path / "made" / "m.jsonl"
    transport = JsonlFileTransport(str(path))
    assert transport.send([{"a": 1}, {"b": 2}]).sent == 2
    assert transport.send([{"c": "naïve"}]).sent == 1
    transport.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"a": 1},
        {"b": 2},
        {"c": "naïve"},
    ]
    assert path.stat().st_mode & 0o077 == 0  # messages are the app's data: owner only
    assert transport.describe() == f"file {path}"

    refused = transport.send([{"tags": {"a", "b"}}])
    assert (refused.failed, refused.retryable) == (1, False) and "not JSON" in refused.error
    assert len(path.read_text().splitlines()) == 3  # nothing half-written

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = JsonlFileTransport(str(blocker / "m.jsonl")).send([{"a": 1}])
    assert unwritable.retryable and unwritable.sent == 0 and "cannot write" in unwritable.error
