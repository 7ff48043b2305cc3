"""Mona's aggregation of messages into context records, applied locally.

Mona keeps one record per (context class, context id) and folds every message for it
into that record. The in-memory transport, the local collector and the pytest fixture
all need the same fold, so it lives here, framework-free; it is public for reading a
JSONL file of wire messages (the file transport's) as Mona would store it.

Semantics (shared/docs/mona-rest-protocol.md):

- ``OVERWRITE`` (the default): each field replaces the stored value.
- ``ADD``: each value is appended to the field, which becomes a list of values. A
  field that held a single value becomes ``[old, new]``.
- ``NEW``: the record is reset to this message alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._util.protocol import ADD, NEW, OVERWRITE

__all__ = ["aggregate", "apply_message"]


def apply_message(record: dict[str, Any], fields: Mapping[str, Any], action: str | None) -> None:
    """Fold one message's fields into ``record`` in place, as Mona does."""
    action = action or OVERWRITE
    if action == NEW:
        record.clear()
        record.update(fields)
    elif action == ADD:
        for key, value in fields.items():
            if key not in record:
                record[key] = [value]
            elif isinstance(record[key], list):
                record[key] = [*record[key], value]
            else:
                record[key] = [record[key], value]
    else:
        record.update(fields)


def aggregate(
    messages: Iterable[Mapping[str, Any]], default_action: str | None = None
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Fold wire messages (``arcClass``/``contextId``/``message``/``action``) into records.

    Returns ``{(context_class, context_id): fields}`` in first-seen order.

    >>> aggregate([{"arcClass": "C", "contextId": "1", "message": {"a": 1}}])
    {('C', '1'): {'a': 1}}
    """
    # Keys as the messages carry them (a message missing its class: None).
    records: dict[tuple[Any, Any], dict[str, Any]] = {}
    for message in messages:
        key = (message.get("arcClass") or message.get("contextClass"), message.get("contextId"))
        record = records.setdefault(key, {})
        apply_message(record, message.get("message") or {}, message.get("action") or default_action)
    return records
