"""The batcher's short way to a wire message (encode the plain context at once) and the
general way (field by field) agree on every context: the same messages, the same counts."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import os
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mona_middleware as mona
from mona_middleware._export import wire
from mona_middleware._export.prepare import context_messages, global_fields
from mona_middleware._util.stats import ExportStats
from mona_middleware.config import MonaConfig

pytestmark = pytest.mark.skipif(not wire.FAST, reason="the short way needs orjson")


class Color(enum.Enum):
    RED = "red"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["null", "nullable", "MONA_x", "\u2028", "\ud800"]),
    st.just(Decimal("1.5")),
    st.just(dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)),
    st.just(Color.RED),
    st.just({1, 2}),
    st.just(b"bytes"),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 9)), inner, max_size=3),
    ),
    max_leaves=8,
)
keys = st.one_of(
    st.text(max_size=10), st.sampled_from(["MONA_score", "MONARCH_ID", "null", "a"])
)
fields = st.dictionaries(keys, values, max_size=6)
own_fields = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"http_status_code": st.sampled_from([200, 404]), "duration_ms": st.floats(0, 10)}
    ),
)


def twins(cid: str, exported: dict, own: dict | None, late: bool):
    made = []
    for _ in range(2):
        ctx = mona.MonaContext("WIRE", cid)
        ctx.opened_at = 1_700_000_000.123
        ctx.export(exported)
        if own:
            ctx.record(dict(own))
        ctx.closed = True
        ctx.late = late
        made.append(ctx)
    return made


def normal(messages):
    """Messages as the backend reads them (NaN never reaches one: compare as text)."""
    return json.dumps([json.loads(m) if type(m) is bytes else m for m in messages], sort_keys=True)


@settings(
    max_examples=int(os.environ.get("WIRE_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    exported=fields,
    own=own_fields,
    filter_none=st.booleans(),
    shared=st.sampled_from([{}, {"env": "prod"}, {"MONA_team": "a", "n": float("nan")}]),
    late=st.booleans(),
)
def test_the_short_way_and_the_general_way_give_the_same_messages(
    exported, own, filter_none, shared, late
):
    # Two equal configurations: each converts its global fields once, counting for itself.
    configs = [MonaConfig(filter_none_fields=filter_none, global_fields=shared) for _ in "ab"]
    short_ctx, general_ctx = twins("c-1", exported, own, late)
    short_stats, general_stats = ExportStats(), ExportStats()
    # Each converts its global fields once per configuration (counting a bad one once,
    # whichever context comes first): converted before, so only the context's own count.
    global_fields(configs[0], "WIRE", ExportStats())
    short = wire.context_wire(short_ctx, configs[0], short_stats)
    global_fields(configs[1], "WIRE", ExportStats())
    general = context_messages(general_ctx, configs[1], general_stats)
    assert normal(short) == normal(general)
    assert short_stats.snapshot() == general_stats.snapshot()


def test_a_plain_context_takes_the_short_way_and_is_bytes():
    config = MonaConfig()
    ctx, _ = twins("c-2", {"score": 0.93, "model": "v3"}, {"http_status_code": 200}, False)
    (message,) = wire.context_wire(ctx, config, ExportStats())
    assert type(message) is bytes
    decoded = json.loads(message)
    assert decoded["message"] == {"score": 0.93, "model": "v3", "http_status_code": 200}
    assert decoded["contextId"] == "c-2" and decoded["arcClass"] == "WIRE"


@pytest.mark.parametrize(
    "value", [math.nan, None, {1, 2}, dt.date(2024, 1, 1), 2**70, "x"], ids=repr
)
def test_what_the_short_way_cannot_vouch_for_goes_the_general_way(value, caplog):
    config = MonaConfig()
    ctx, twin = twins("c-3", {"v": value, "MONA_k" if value == "x" else "k": 1}, None, False)
    assert normal(wire.context_wire(ctx, config, ExportStats())) == normal(
        context_messages(twin, config, ExportStats())
    )
