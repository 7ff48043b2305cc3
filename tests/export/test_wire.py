"""The batcher's short way to a wire message (encode the plain context at once) and the
general way (field by field) agree on every context: the same messages, the same counts."""

from __future__ import annotations

import datetime as dt
import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mona_middleware as mona
from mona_middleware._export import wire
from mona_middleware._export.prepare import context_messages, global_fields
from mona_middleware._util.stats import ExportStats
from mona_middleware.config import MonaConfig

from ..strategies import fields, own_fields

pytestmark = pytest.mark.skipif(not wire.FAST, reason="the short way needs orjson")


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
