"""An oversized message loses its largest fields, each named, and keeps the rest."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mona_middleware.transports.sizes import fit_messages


def wire(fields, cls="C", cid="c1"):
    return {"message": fields, "contextId": cid, "arcClass": cls, "action": None}


def test_the_largest_fields_go_first_and_each_is_logged_by_name(caplog):
    messages = [wire({"small": 1, "big": "x" * 5000, "bigger": "y" * 9000}), wire({"a": 1})]
    assert fit_messages(messages, 6000) == 1
    assert messages[0]["message"] == {"small": 1, "big": "x" * 5000}
    assert messages[1] == wire({"a": 1})
    assert "field 'bigger' of a C message" in caplog.text


def test_a_message_under_the_limit_is_left_as_it_was():
    original = wire({"a": "z" * 100})
    messages = [original]
    assert fit_messages(messages, 10_000) == 0
    assert messages[0] is original


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.integers(), st.text(max_size=3000), st.lists(st.text(max_size=200))),
        max_size=12,
    ),
    st.integers(min_value=300, max_value=6000),
)
def test_every_shrunk_message_fits_and_keeps_only_whole_original_fields(fields, limit):
    messages = [wire(dict(fields))]
    dropped = fit_messages(messages, limit)
    kept = messages[0]["message"]
    assert len(kept) + dropped == len(fields)
    assert all(fields[name] == value for name, value in kept.items())
    if dropped:  # fits, unless the envelope alone would not
        envelope = len(json.dumps(wire({}), separators=(",", ":")))
        size = len(json.dumps(messages[0], separators=(",", ":"), ensure_ascii=False).encode())
        assert size <= limit or envelope > limit or not kept
