"""``messages_from``'s short way (a context whose exports merged into one dict, nearly
every context) and its general way (``messages_op_by_op``: op by op, then coalesced)
give the same wire messages and the same counts, for any fields, own fields, options
and ``before_send`` hook."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mona_middleware as mona
from mona_middleware._export.prepare import global_fields, messages_from, messages_op_by_op
from mona_middleware._util.stats import ExportStats
from mona_middleware.config import MonaConfig

from ..strategies import fields, own_fields


def _keep(message):
    return message


def _drop(message):
    return None


def _add_nan(message):
    message["message"]["added"] = float("nan")  # dropped by the conversion after the hook
    message["message"]["tag"] = "t"
    return message


def _beside_message(message):
    message["extra"] = {1, 2}  # not JSON, beside "message": the message is dropped
    return message


def _not_a_dict(message):
    return "not a message"  # logged; the message goes as it was


def _raises(message):
    raise RuntimeError("hook failed")  # logged; the message goes as it was


HOOKS = [None, _keep, _drop, _add_nan, _beside_message, _not_a_dict, _raises]


def closed(exported: dict, own: dict | None, late: bool, hook, stamp) -> mona.MonaContext:
    ctx = mona.MonaContext("PREPARE", "p-1", export_timestamp=stamp)
    ctx.opened_at = 1_700_000_000.123
    ctx.export(exported)
    if own:
        ctx.record(dict(own))
    ctx.closed = True
    ctx.late = late
    ctx.before_send = hook
    return ctx


def normal(messages: list[dict]) -> str:
    """As the backend reads them (NaN never reaches one: compared as text)."""
    return json.dumps(messages, sort_keys=True, default=repr)


@settings(
    max_examples=int(os.environ.get("PREPARE_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    exported=fields,
    own=own_fields,
    filter_none=st.booleans(),
    shared=st.sampled_from([{}, {"env": "prod"}, {"MONA_team": "a", "n": float("nan")}]),
    late=st.booleans(),
    hook=st.sampled_from(HOOKS),
    stamp=st.sampled_from([None, 1_700_000_000, "2024-05-01T12:00:00Z"]),  # an invalid one is now
)
def test_the_whole_dict_way_and_the_op_by_op_way_give_the_same_messages(
    exported, own, filter_none, shared, late, hook, stamp
):
    configs = [MonaConfig(filter_none_fields=filter_none, global_fields=shared) for _ in "ab"]
    results = []
    for way, config in zip((messages_from, messages_op_by_op), configs, strict=True):
        ctx = closed(exported, own, late, hook, stamp)
        taken, taken_own = ctx.take_ops(), ctx.take_own()
        global_fields(config, "PREPARE", ExportStats())  # its own count, once per config
        stats = ExportStats()
        results.append((normal(way(ctx, taken, taken_own, config, stats)), stats.snapshot()))
    assert results[0] == results[1]


def test_a_context_of_plain_exports_is_one_overwrite_either_way():
    config = MonaConfig(global_fields={"env": "prod"}, filter_none_fields=True)
    exported = {"score": 0.5, "MONA_x": 1, "gone": None}
    for way in (messages_from, messages_op_by_op):
        ctx = closed(exported, {"duration_ms": 1.5}, False, None, None)
        (message,) = way(ctx, ctx.take_ops(), ctx.take_own(), config, ExportStats())
        assert message["action"] == "OVERWRITE"
        assert message["exportTimestamp"] == 1_700_000_000.123
        expected = {"env": "prod", "score": 0.5, "MY_MONA_x": 1, "duration_ms": 1.5}
        assert message["message"] == expected
