"""Folding one context's exports into as few messages as possible, without changing
what Mona ends up storing.

Each key's history is what matters: an OVERWRITE of a key replaces everything before
it, ADDs of a key append in order, NEW forgets all. So all OVERWRITE/NEW fields can live
in one leading message, and the n-th ADD of a key goes into the n-th ADD message, which
keeps two ADD values of one key in two messages (never one list) and in their order.
Exports with different explicit timestamps are never merged: each keeps its own.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from .._util.protocol import ADD, NEW, OVERWRITE
from .items import Op, Part

__all__ = ["coalesce"]


def coalesce(ops: list[Op]) -> list[Part]:
    """Return ``[(action, fields, timestamp or None)]`` equivalent to applying ``ops`` in order.

    >>> coalesce([{"a": 1}, ("ADD", {"n": 1}, None), ("ADD", {"n": 2}, None), {"b": 2}])
    [('OVERWRITE', {'a': 1, 'b': 2}, None), ('ADD', {'n': 1}, None), ('ADD', {'n': 2}, None)]
    """
    if len(ops) == 1 and type(ops[0]) is dict:  # only plain exports: the context merged them
        return [(OVERWRITE, ops[0], None)]
    parts: list[Part] = []
    for ts, run in groupby(ops, key=_timestamp):  # runs of one timestamp, in order
        parts.extend(_fold(run, ts))
    return parts


def _timestamp(op: Op) -> Any:
    return None if type(op) is dict else op[2]  # type: ignore[index]  # (else: a tuple)


def _fold(ops: Any, ts: Any) -> list[Part]:
    base: dict[str, Any] | None = None
    base_action = OVERWRITE
    adds: list[dict[str, Any]] = []
    for op in ops:
        if type(op) is dict:
            action, fields = OVERWRITE, op
        else:
            action, fields = op[0] or OVERWRITE, op[1]
        if action == NEW:
            base, base_action, adds = dict(fields), NEW, []
        elif action == ADD:
            for key, value in fields.items():
                index = 0
                while index < len(adds) and key in adds[index]:
                    index += 1
                if index == len(adds):
                    adds.append({})
                adds[index][key] = value
        else:
            if adds:
                adds = _without_keys(adds, fields)
            if base is None:
                base = dict(fields)
            else:
                base.update(fields)
    result = [] if base is None else [(base_action, base, ts)]
    result.extend((ADD, fields, ts) for fields in adds)
    return result


def _without_keys(adds: list[dict[str, Any]], keys: dict[str, Any]) -> list[dict[str, Any]]:
    """Drop keys an OVERWRITE replaces from earlier ADD messages; drop emptied messages."""
    kept = []
    for fields in adds:
        for key in keys:
            fields.pop(key, None)
        if fields:
            kept.append(fields)
    return kept
