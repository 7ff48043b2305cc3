"""Module-level ``export()`` inlines ``MonaContext.export``'s common case (a plain dict of
new keys, merged without a lock) and repeats its "closed by another thread meanwhile"
check. For any sequence of exports (plain, a key again, ADD/NEW/OVERWRITE, a timestamp,
a bad action, a Mapping, no mapping at all), with the context closed by another thread
before an export or while one runs, the two record the same ops, send the same late
exports, give the same wire messages, return, count and log the same."""

from __future__ import annotations

import json
import logging
import os
import types
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mona_middleware as mona
from mona_middleware._api.context import MonaContext, current_var
from mona_middleware._export.prepare import context_messages
from mona_middleware._runtime import process
from mona_middleware._util import log as _log
from mona_middleware._util.stats import ExportStats
from mona_middleware.config import MonaConfig
from mona_middleware.errors import MonaExportError

from ..strategies import fields


class ClosingKey:
    """A key whose hashing closes the context it is aimed at, once: another thread
    closing it between the export's ``closed`` check and its ``update``."""

    target: MonaContext | None = None

    def __hash__(self) -> int:
        target, ClosingKey.target = ClosingKey.target, None
        if target is not None:
            target.closed = True
        return 7

    def __eq__(self, other: object) -> bool:
        return type(other) is ClosingKey

    def __repr__(self) -> str:
        return "ClosingKey()"


small_fields = st.dictionaries(st.sampled_from(["a", "b", "MONA_c", 1]), st.integers(0, 3))
step = st.one_of(
    st.tuples(st.just("export"), st.one_of(fields, small_fields), st.just(None), st.just(None)),
    st.tuples(
        st.just("export"),
        small_fields,
        st.sampled_from([None, "ADD", "new", "OVERWRITE", "bogus", 3]),
        st.sampled_from([None, 1_700_000_000, "2024-05-01T12:00:00Z"]),
    ),
    st.tuples(st.just("mapping"), small_fields, st.just(None), st.just(None)),
    st.tuples(st.just("not a mapping"), st.just([("a", 1)]), st.just(None), st.just(None)),
    st.tuples(st.just("closed meanwhile"), small_fields, st.just(None), st.just(None)),
    st.tuples(st.just("closed before"), st.just({}), st.just(None), st.just(None)),
)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


def normal(value) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def run(steps, start: str, raising: bool, module_level: bool):
    """Play ``steps`` on a fresh context (current in this thread) one way; what came of it."""
    ctx = MonaContext("EXPORT_PATHS", "e-1", export_timestamp=None)
    ctx.opened_at = 1_700_000_000.5
    if start != "open":
        ctx.disabled = True
        ctx.sampled_out = start == "sampled out"
    counted: list = []
    enqueued: list = []
    config = MonaConfig(raise_export_exceptions=raising)
    handler = Records()
    _log.logger.target.addHandler(handler)
    _log.limited.reset()
    token = current_var.set(ctx)
    returned = []
    try:
        with (
            mock.patch.object(process, "count", lambda name, amount=1: counted.append(name)),
            mock.patch.object(process, "enqueue", lambda item: enqueued.append(item) or True),
            mock.patch.object(process, "config", lambda: config),
        ):
            for kind, message, action, stamp in steps:
                if kind == "closed before":
                    ctx.closed = True
                    continue
                if kind == "closed meanwhile":
                    message = {**message, ClosingKey(): 1}
                    ClosingKey.target = ctx
                elif kind == "mapping":
                    message = types.MappingProxyType(message)
                try:
                    if module_level:
                        result = mona.export(message, action=action, export_timestamp=stamp)
                    else:
                        result = ctx.export(message, action, stamp)
                except MonaExportError as exc:
                    result = f"raised {exc}"
                ClosingKey.target = None
                returned.append(result)
    finally:
        current_var.reset(token)
        _log.logger.target.removeHandler(handler)
    recorded = repr([ctx.ops(), ctx.closed])  # keys of any type, in their order
    messages = []
    stats = ExportStats()
    for item in (ctx, *enqueued):
        late = (item.late, item.closed, item.context_id, item.export_timestamp)
        messages.append([late, context_messages(item, MonaConfig(), stats)])
    return returned, recorded, normal(messages), stats.snapshot(), counted, handler.lines


@settings(
    max_examples=int(os.environ.get("EXPORT_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    steps=st.lists(step, max_size=6),
    start=st.sampled_from(["open", "open", "open", "disabled", "sampled out"]),
    raising=st.booleans(),
)
def test_module_export_and_the_context_method_record_send_and_count_the_same(steps, start, raising):
    module = run(steps, start, raising, module_level=True)
    method = run(steps, start, raising, module_level=False)
    assert module == method


@pytest.mark.parametrize("module_level", [True, False])
def test_an_export_into_a_context_closed_meanwhile_goes_late(module_level):
    steps = [("export", {"a": 1}, None, None), ("closed meanwhile", {"b": 2}, None, None)]
    returned, recorded, messages, _, counted, _ = run(steps, "open", False, module_level)
    assert returned == [True, True] and counted == []
    # Merged into the context (the exporter may have taken it already) and sent late too.
    assert recorded.endswith("True]")
    own, late = json.loads(messages)
    # (The closing key itself is no JSON key: dropped from each, counted.)
    assert own[1][0]["message"] == {"a": 1, "b": 2}
    assert late[0][0] is True and late[1][0]["message"] == {"b": 2}
