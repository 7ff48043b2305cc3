"""``export_batch``: explicit messages, each with its own class, id and timestamp (backfills).

Each entry is checked on the caller's thread and turned into the exporter's own
``ExplicitMessage``; an unusable one is logged with its index and reason, and the rest
still go out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .._export.items import ExplicitBatch, ExplicitMessage
from .._runtime import process
from .._util.log import limited
from .._util.protocol import check_action
from ..errors import MonaExportError
from .context import refuse
from .sampling import keep, rate_for

__all__ = ["MonaMessage", "export_batch", "to_explicit"]


@dataclasses.dataclass
class MonaMessage:
    """One explicit message, named as ``mona_sdk``'s ``MonaSingleMessage``, for ``export_batch``.

    >>> MonaMessage(message={"score": 0.9}, contextClass="MODEL", contextId="r-1").action is None
    True
    """

    message: Mapping[str, Any]
    contextClass: str
    contextId: str | None = None
    exportTimestamp: Any = None
    action: str | None = None


def export_batch(messages: Iterable[Any], *, default_action: str | None = None) -> int:
    """Queue explicit messages (each with its own class, id and timestamp), e.g. a backfill.

    Accepts ``MonaMessage`` objects or dicts with mona_sdk's keys (``message``,
    ``contextClass``, ``contextId``, ``exportTimestamp``, ``action``). Any number: they
    are queued in chunks of ``batch_size``, each waiting for room (a generator is never
    held in memory whole). Returns how many were queued; an unusable entry is logged
    with its index and reason, the rest go out.
    Anything but an iterable of entries (``None``, one dict) is refused as a whole: 0.

    >>> export_batch([MonaMessage(message={"rows": 10}, contextClass="NIGHTLY_JOB")])
    1
    """
    config = process.config()
    if config.disable_all or process.disabled():
        return 0
    items = _batch_items(messages)
    if items is None:
        refuse(f"export_batch() takes an iterable of messages, got {type(messages).__name__}")
        return 0
    batch = ExplicitBatch()
    queued = 0
    chunk = config.batch_size  # streamed in chunks: memory stays bounded for any size
    sampled = config.sampling_rate < 1 or bool(config.sampling_rates)
    for index, item in enumerate(items):
        if len(batch) >= chunk:
            queued += len(batch) if process.enqueue_explicit(batch) else 0
            batch = ExplicitBatch()
        try:
            message = to_explicit(item, default_action)
            if sampled and not keep(message.context_id, rate_for(config, message.context_class)):
                process.count_sampled_out()
                continue
            batch.append(message)
        except ValueError as exc:
            process.count_refused("invalid message")
            if config.raise_export_exceptions:
                raise MonaExportError(f"export_batch message {index}: {exc}") from None
            limited(
                40,
                f"batch:{exc}",
                "mona_middleware: export_batch message %d skipped: %s",
                index,
                exc,
            )
    if batch and process.enqueue_explicit(batch):
        queued += len(batch)
    return queued


def _batch_items(messages: Any) -> Iterator[Any] | None:
    """An iterator over the entries, or None when ``messages`` is not a batch of them."""
    if isinstance(messages, (str, bytes, Mapping, MonaMessage)):
        return None  # one message (or text) where a batch was expected
    try:
        return iter(messages)
    except TypeError:
        return None


def to_explicit(item: Any, default_action: str | None) -> ExplicitMessage:
    """Check one ``export_batch`` entry on the caller's thread; raise ValueError if unusable."""
    if isinstance(item, MonaMessage):
        values: Mapping[str, Any] = {
            "message": item.message,
            "contextClass": item.contextClass,
            "contextId": item.contextId,
            "exportTimestamp": item.exportTimestamp,
            "action": item.action,
        }
    elif isinstance(item, Mapping):
        values = item
    else:
        raise ValueError(f"expected a MonaMessage or a dict, got {type(item).__name__}")
    fields = values.get("message")
    context_class = values.get("contextClass", values.get("arcClass"))
    if not isinstance(fields, Mapping):
        raise ValueError(f"'message' must be a dict, got {type(fields).__name__}")
    if not isinstance(context_class, str) or not context_class:
        raise ValueError(f"'contextClass' must be a non-empty string, got {context_class!r}")
    context_id = values.get("contextId")
    timestamp = values.get("exportTimestamp", values.get("sendTimestamp"))
    action = check_action(values.get("action")) or check_action(default_action)
    return ExplicitMessage(
        context_class,
        None if context_id is None else str(context_id),
        dict(fields),
        timestamp,
        action,
    )
