"""Coalescing never changes what Mona stores, and uses as few messages as it can."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mona_middleware._export.coalesce import coalesce
from mona_middleware.aggregate import apply_message


def stored(ops) -> dict:
    """What Mona stores when every op is sent as its own message, in order."""
    record: dict = {}
    for op in ops:
        action, fields = ("OVERWRITE", op) if isinstance(op, dict) else op[:2]
        apply_message(record, fields, action)
    return record


def stored_coalesced(ops) -> dict:
    record: dict = {}
    for action, fields, _ in coalesce([_copy(op) for op in ops]):
        apply_message(record, fields, action)
    return record


def _copy(op):
    return dict(op) if isinstance(op, dict) else (op[0], dict(op[1]), op[2])


def test_overwrites_merge_later_wins_into_one_message():
    parts = coalesce([{"a": 1, "b": 1}, {"b": 2}, ("OVERWRITE", {"c": 3}, None)])
    assert parts == [("OVERWRITE", {"a": 1, "b": 2, "c": 3}, None)]


def test_new_discards_what_came_before():
    parts = coalesce([{"a": 1}, ("ADD", {"n": 1}, None), ("NEW", {"b": 2}, None), {"c": 3}])
    assert parts == [("NEW", {"b": 2, "c": 3}, None)]


def test_add_of_same_key_twice_goes_in_two_messages():
    parts = coalesce([("ADD", {"n": 1, "m": 1}, None), ("ADD", {"n": 2}, None)])
    assert parts == [("ADD", {"n": 1, "m": 1}, None), ("ADD", {"n": 2}, None)]
    assert stored_coalesced([("ADD", {"n": 1}, None), ("ADD", {"n": 2}, None)]) == {"n": [1, 2]}


def test_add_of_different_keys_shares_a_message():
    parts = coalesce([("ADD", {"n": 1}, None), ("ADD", {"m": 2}, None)])
    assert parts == [("ADD", {"n": 1, "m": 2}, None)]


def test_overwrite_after_add_replaces_the_added_values():
    ops = [("ADD", {"n": 1}, None), {"n": 5}]
    assert coalesce(list(ops)) == [("OVERWRITE", {"n": 5}, None)]
    assert stored(ops) == {"n": 5}


def test_add_after_overwrite_appends_to_it():
    ops = [{"n": 1}, ("ADD", {"n": 2}, None)]
    assert stored_coalesced(ops) == stored(ops) == {"n": [1, 2]}


def test_explicit_timestamps_are_kept_per_message():
    parts = coalesce([("OVERWRITE", {"a": 1}, 100), ("ADD", {"n": 1}, 200)])
    assert parts == [("OVERWRITE", {"a": 1}, 100), ("ADD", {"n": 1}, 200)]


def test_exports_with_different_timestamps_are_never_merged():
    ops = [
        ("OVERWRITE", {"a": 1}, 100),
        ("OVERWRITE", {"b": 2}, 200),
        ("ADD", {"n": 1}, 200),
        ("ADD", {"n": 2}, 300),
        {"c": 3},
    ]
    assert coalesce([_copy(op) for op in ops]) == [
        ("OVERWRITE", {"a": 1}, 100),
        ("OVERWRITE", {"b": 2}, 200),
        ("ADD", {"n": 1}, 200),
        ("ADD", {"n": 2}, 300),
        ("OVERWRITE", {"c": 3}, None),
    ]
    # The same timestamp again, later: merged with its neighbours only.
    same = [("OVERWRITE", {"a": 1}, 100), ("OVERWRITE", {"b": 2}, 100)]
    assert coalesce(same) == [("OVERWRITE", {"a": 1, "b": 2}, 100)]


_keys = st.sampled_from(["a", "b", "c", "d"])


_fields = st.dictionaries(_keys, st.integers(0, 9), min_size=1, max_size=3)


_op = st.one_of(
    _fields,
    st.tuples(
        st.sampled_from(["OVERWRITE", "ADD", "NEW", None]),
        _fields,
        st.one_of(st.none(), st.sampled_from([100, 200])),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_op, max_size=12))
def test_any_sequence_stores_the_same_record_as_sending_each_export(ops):
    assert stored_coalesced(ops) == stored(ops)
    parts = coalesce([_copy(op) for op in ops])
    assert len(parts) <= max(len(ops), 1)
    # Every op's timestamp is kept: each message carries one of them, none is invented.
    assert {ts for _, _, ts in parts} <= {None if isinstance(op, dict) else op[2] for op in ops}
