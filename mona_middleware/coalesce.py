"""Folding one context's exports into as few messages as possible, without changing
what Mona ends up storing.

Each key's history is what matters: an OVERWRITE of a key replaces everything before
it, ADDs of a key append in order, NEW forgets all. So all OVERWRITE/NEW fields can live
in one leading message, and the n-th ADD of a key goes into the n-th ADD message, which
keeps two ADD values of one key in two messages (never one list) and in their order.
"""

from __future__ import annotations

from typing import Any

from .aggregate import ADD, NEW, OVERWRITE

# An op as the context records it: a bare dict is an OVERWRITE with no timestamp
# (the common case, kept allocation-free); otherwise (action, fields, timestamp).
Op = dict[str, Any] | tuple[str | None, dict[str, Any], Any]


def coalesce(ops: list[Op]) -> list[tuple[str, dict[str, Any], Any]]:
    """Return ``[(action, fields, timestamp or None)]`` equivalent to applying ``ops`` in order.

    >>> coalesce([{"a": 1}, ("ADD", {"n": 1}, None), ("ADD", {"n": 2}, None), {"b": 2}])
    [('OVERWRITE', {'a': 1, 'b': 2}, None), ('ADD', {'n': 1}, None), ('ADD', {'n': 2}, None)]
    """
    base: dict[str, Any] | None = None
    base_action = OVERWRITE
    base_ts: Any = None
    adds: list[dict[str, Any]] = []
    adds_ts: list[Any] = []
    for op in ops:
        if type(op) is dict:
            action, fields, ts = OVERWRITE, op, None
        else:
            action, fields, ts = op
            action = action or OVERWRITE
        if action == NEW:
            base, base_action, base_ts = dict(fields), NEW, ts
            adds, adds_ts = [], []
        elif action == ADD:
            for key, value in fields.items():
                index = 0
                while index < len(adds) and key in adds[index]:
                    index += 1
                if index == len(adds):
                    adds.append({})
                    adds_ts.append(None)
                adds[index][key] = value
                if ts is not None:
                    adds_ts[index] = ts
        else:
            if adds:
                adds, adds_ts = _without_keys(adds, adds_ts, fields)
            if base is None:
                base = dict(fields)
            else:
                base.update(fields)
            if ts is not None:
                base_ts = ts
    result = [] if base is None else [(base_action, base, base_ts)]
    result.extend((ADD, fields, ts) for fields, ts in zip(adds, adds_ts, strict=True))
    return result


def _without_keys(adds, adds_ts, keys) -> tuple[list[dict[str, Any]], list[Any]]:
    """Drop keys an OVERWRITE replaces from earlier ADD messages; drop emptied messages."""
    kept, kept_ts = [], []
    for fields, ts in zip(adds, adds_ts, strict=True):
        for key in keys:
            fields.pop(key, None)
        if fields:
            kept.append(fields)
            kept_ts.append(ts)
    return kept, kept_ts
