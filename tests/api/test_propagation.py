"""The context's class and id as W3C baggage: encoded, merged with baggage already on the
call, and read back strictly on the other side (20 kinds of bad value ignored, counted)."""

from __future__ import annotations

import logging

import pytest

import mona_middleware as mona
from mona_middleware._api.propagation import (
    BadBaggage,
    incoming_context,
    merge_baggage,
    outgoing_headers,
    parse_baggage,
    read_context,
)
from mona_middleware._util.log import logger
from mona_middleware.transports import InMemoryTransport


def test_outside_a_context_there_is_nothing_to_send():
    assert mona.outgoing_headers() == {}
    assert outgoing_headers({"baggage": "userId=alice"}) == {}


def test_inside_a_context_its_class_and_id_go_as_baggage(memory):
    with mona.context("FRAUD_MODEL", context_id="txn-42"):
        headers = mona.outgoing_headers()
    assert headers == {"baggage": "mona.context_class=FRAUD_MODEL,mona.context_id=txn-42"}
    assert read_context(headers["baggage"]) == ("FRAUD_MODEL", "txn-42")


def test_a_sub_context_sends_its_own_id(memory):
    with mona.context("GATEWAY", context_id="r1"), mona.sub_context("FEATURES", sub_id="f"):
        headers = mona.outgoing_headers()
    assert read_context(headers["baggage"]) == ("FEATURES", "r1.f")


def test_existing_baggage_is_kept_member_by_member(memory):
    existing = "userId=alice;ttl=3, tenant=acme%2Ceu"
    with mona.context("MODEL", context_id="r-1"):
        headers = outgoing_headers({"Baggage": existing, "Accept": "*/*"})
    assert headers["baggage"].startswith("userId=alice;ttl=3,tenant=acme%2Ceu,")
    entries = parse_baggage(headers["baggage"])
    assert entries[:2] == [("userId", "alice", ";ttl=3"), ("tenant", "acme,eu", "")]
    assert read_context(headers["baggage"]) == ("MODEL", "r-1")


def test_the_context_this_service_was_called_with_is_replaced_not_repeated():
    merged = merge_baggage("a=1,mona.context_class=OLD,mona.context_id=old,b=2", "NEW", "n1")
    assert merged == "a=1,b=2,mona.context_class=NEW,mona.context_id=n1"


def test_ids_with_any_allowed_character_round_trip(memory):
    for context_id in ["550e8400-e29b-41d4-a716-446655440000", "a/b:c@d+e=f~g.h_i", "X" * 256]:
        with mona.context("C", context_id=context_id):
            assert read_context(mona.outgoing_headers()["baggage"]) == ("C", context_id)


def test_a_sampled_out_context_still_travels_so_the_callee_agrees():
    mona.configure(sampling_rate=0.000001, transport=InMemoryTransport())
    with mona.context("C", context_id="r1") as ctx:
        assert ctx.sampled_out
        assert read_context(mona.outgoing_headers()["baggage"]) == ("C", "r1")


def test_baggage_without_mona_entries_is_not_a_context():
    assert incoming_context(None) is None
    assert incoming_context("") is None
    assert incoming_context("userId=alice,tenant=acme") is None
    assert read_context("mona.other=1") is None


# Each value is ignored: the request gets its own context, and a counter says so.
BAD = {
    "id too long": "mona.context_class=C,mona.context_id=" + "x" * 257,
    "id with NUL": "mona.context_class=C,mona.context_id=a%00b",
    "id with newline": "mona.context_class=C,mona.context_id=a%0Ab",
    "id with DEL": "mona.context_class=C,mona.context_id=a%7Fb",
    "id with a space": "mona.context_class=C,mona.context_id=a%20b",
    "id not ASCII": "mona.context_class=C,mona.context_id=caf%C3%A9",
    "id empty": "mona.context_class=C,mona.context_id=",
    "id starting with a dot": "mona.context_class=C,mona.context_id=.hidden",
    "class with a space": "mona.context_class=MY%20MODEL,mona.context_id=r1",
    "class starting with a digit": "mona.context_class=1MODEL,mona.context_id=r1",
    "class with a dash": "mona.context_class=MY-MODEL,mona.context_id=r1",
    "class too long": "mona.context_class=" + "C" * 101 + ",mona.context_id=r1",
    "class empty": "mona.context_class=,mona.context_id=r1",
    "id missing": "userId=alice,mona.context_class=C",
    "class missing": "mona.context_id=r1",
    "two different ids": "mona.context_class=C,mona.context_id=r1,mona.context_id=r2",
    "broken percent escape": "mona.context_class=C,mona.context_id=r%zz1",
    "not UTF-8 once decoded": "mona.context_class=C,mona.context_id=r%FF",
    "member without =": "mona.context_class=C,mona.context_id=r1,garbage",
    "key not a token": "mona.context_class=C,mona.context_id=r1,bad key=1",
    "quote in a value": 'mona.context_class=C,mona.context_id="r1"',
    "empty member": "mona.context_class=C,,mona.context_id=r1",
    "header too long": "mona.context_class=C,mona.context_id=r1,pad=" + "p" * 8200,
    "too many members": "mona.context_class=C,mona.context_id=r1,"
    + ",".join(f"k{i}=v" for i in range(180)),
}


def test_there_are_at_least_twenty_kinds_of_bad_value():
    assert len(BAD) >= 20


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_incoming_value_is_refused_with_a_reason(kind):
    with pytest.raises(BadBaggage) as raised:
        read_context(BAD[kind])
    assert str(raised.value)  # the reason logged and counted


def test_every_bad_value_is_ignored_counted_and_logged_without_the_value(memory, caplog):
    caplog.set_level(logging.WARNING, logger=logger.target.name)  # whatever others set
    for kind, header in BAD.items():
        assert incoming_context(header) is None, kind
    assert mona.stats()["incoming_contexts_ignored"] == len(BAD)
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "incoming context ignored" in logged
    assert "caf" not in logged and "garbage" not in logged  # reasons, never the values


def test_a_valid_header_with_properties_and_spaces_is_read():
    header = " userId=alice , mona.context_class = C ; p=1 , mona.context_id=r%2F1 "
    assert incoming_context(header) == ("C", "r/1")
    assert incoming_context("mona.context_class=C,mona.context_id=r1,mona.context_id=r1") == (
        "C",
        "r1",
    )


def test_header_pairs_and_odd_header_objects_are_read_or_ignored(memory):
    """requests and httpx take headers as a list of pairs too; raw ASGI pairs are bytes.
    Headers that cannot be read give nothing to add: the call goes out as the app made it."""
    from collections.abc import Mapping

    class Raising(Mapping):
        def __getitem__(self, key):
            raise RuntimeError("no")

        def __iter__(self):
            raise RuntimeError("no")

        def __len__(self):
            return 1

    ours = "mona.context_class=MODEL,mona.context_id=r-1"
    with mona.context("MODEL", context_id="r-1"):
        pairs = [("Accept", "*/*"), ("Baggage", "a=1"), ("baggage", "b=2")]
        assert mona.outgoing_headers(pairs) == {"baggage": f"a=1,b=2,{ours}"}
        assert mona.outgoing_headers((("x", "y"),)) == {"baggage": ours}
        assert mona.outgoing_headers([(b"baggage", b"a=1")]) == {"baggage": f"a=1,{ours}"}
        for odd in (Raising(), "baggage=a", 42, [("only-one",)], [object()]):
            assert mona.outgoing_headers(odd) == {}


def test_context_id_header_values_pass_the_baggage_id_rule():
    from mona_middleware._api.propagation import header_context_id, id_problem

    assert header_context_id("req-123") == "req-123"
    assert header_context_id(None) is None and header_context_id("") is None
    assert id_problem("a\x1b[31m") == "holds a control character"
    assert id_problem("a\nb") == "holds a control character"
    assert id_problem("x" * 257) == "longer than 256 characters"
    assert id_problem("a b") == "holds characters an id may not have"
    assert id_problem("ok.id:1@x+y=z/w~v-u") is None
