"""``export_batch``: explicit messages, each with its own class, id and timestamp (backfills).

Each entry is checked on the caller's thread and turned into the exporter's own
``ExplicitMessage``; an unusable one is logged with its index and reason, and the rest
still go out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .._export.items import ExplicitBatch, ExplicitMessage
from .._runtime import process
from .._util.log import Guard, limited, refuse, safe_repr
from .._util.protocol import check_action
from ..errors import MonaError
from .context import printable_keys, refuse_export
from .sampling import keep, rate_for

_BATCH = Guard("export_batch() failed")
_STR_ONLY = frozenset({str})

__all__ = ["BatchOutcome", "MonaMessage", "export_batch", "queue_batch", "to_explicit"]


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


@dataclasses.dataclass
class BatchOutcome:
    """What ``queue_batch`` did with each entry, at return time (nothing is sent yet)."""

    total: int = 0  # entries offered
    queued: int = 0  # handed to the exporter
    sampled_out: int = 0  # left out by client-side sampling, as mona_sdk samples
    failures: dict[str, str] = dataclasses.field(default_factory=dict)  # index -> reason
    disabled: bool = False  # the kill switch is on: nothing was queued


def export_batch(messages: Iterable[Any], *, default_action: str | None = None) -> int:
    """Queue explicit messages (each with its own class, id and timestamp), e.g. a backfill.

    Accepts ``MonaMessage`` objects, ``mona_sdk.MonaSingleMessage`` objects (or any object
    with their attributes) or dicts with mona_sdk's keys (``message``, ``contextClass``,
    ``contextId``, ``exportTimestamp`` or ``sendTimestamp``, ``action``). Any number: they
    are queued in chunks of ``batch_size``, each waiting for room (a generator is never
    held in memory whole). Returns how many were queued; an unusable entry is logged
    with its index and reason, the rest go out.
    Anything but an iterable of entries (``None``, one dict) is refused as a whole: 0.

    >>> export_batch([MonaMessage(message={"rows": 10}, contextClass="NIGHTLY_JOB")])
    1
    """
    try:
        outcome = queue_batch(messages, default_action)
    except MonaError:
        raise
    except Exception as exc:  # a bug of ours: what was queued is still sent
        _BATCH.caught(exc)
        return 0
    return 0 if outcome is None else outcome.queued


def queue_batch(
    messages: Iterable[Any],
    default_action: str | None = None,
    *,
    filter_none: bool = False,
    raise_errors: bool | None = None,
) -> BatchOutcome | None:
    """``export_batch`` with the fate of each entry; None when ``messages`` is no batch.

    ``filter_none`` leaves out None-valued fields here, on the caller's thread (a
    per-call choice, as mona_sdk's ``filter_none_fields``); ``raise_errors`` overrides
    ``raise_export_exceptions`` for this call.
    """
    config = process.config()
    raising = config.raise_export_exceptions if raise_errors is None else raise_errors
    if process.switched_off(config):
        return BatchOutcome(disabled=True)
    items = _batch_items(messages)
    if items is None:
        kind = type(messages).__name__
        refuse_export(f"export_batch() takes an iterable of messages, got {kind}", raising)
        return None
    outcome = BatchOutcome()
    batch = ExplicitBatch()
    indices: list[int] = []
    chunk = config.batch_size  # streamed in chunks: memory stays bounded for any size
    for index, item in _read(items):
        if len(batch) >= chunk:
            _enqueue(batch, indices, outcome)
            batch, indices = ExplicitBatch(), []
        outcome.total += 1
        try:
            message = to_explicit(item, default_action)
            if config.samples and not keep(
                message.context_id, rate_for(config, message.context_class)
            ):
                process.count_sampled_out()
                outcome.sampled_out += 1
                continue
            if filter_none:
                fields = {key: value for key, value in message.fields.items() if value is not None}
                message = dataclasses.replace(message, fields=fields)
            batch.append(message)
            indices.append(index)
        except Exception as exc:
            _skip(index, exc, raising, outcome)
    if batch:
        _enqueue(batch, indices, outcome)
    return outcome


def _skip(index: int, exc: Exception, raising: bool, outcome: BatchOutcome) -> None:
    """Entry ``index`` is unusable: counted, and raised or logged; the rest still go out."""
    if not isinstance(exc, ValueError):  # the entry's own methods raised
        exc = ValueError(f"could not be read: {type(exc).__name__} raised")
    if not raising:
        outcome.failures[str(index)] = str(exc)
    refuse(
        f"export_batch message {index}: {exc}",
        raising=raising,
        count=process.count_refused,
        key=f"batch:{exc}",
        line="mona_middleware: export_batch message %d skipped: %s",
        args=(index, exc),
    )


def _enqueue(batch: ExplicitBatch, indices: list[int], outcome: BatchOutcome) -> None:
    if process.enqueue_explicit(batch):
        outcome.queued += len(batch)
    else:
        for index in indices:
            outcome.failures[str(index)] = (
                "not queued: dropped, with its reason in stats()['dropped']"
            )


def _read(items: Iterator[Any]) -> Iterator[tuple[int, Any]]:
    """``enumerate(items)``, ending (logged, counted) where the iterable itself raises: the
    entries read so far still go out, and the app is not the one to fail."""
    index = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except Exception as exc:
            reason = f"export_batch stopped at message {index}: the iterable raised"
            process.count_refused(reason)
            limited(
                logging.ERROR,
                f"batch:{reason}",
                "mona_middleware: %s %s; the messages before it are queued",
                reason,
                type(exc).__name__,
            )
            return
        yield index, item
        index += 1


def _batch_items(messages: Any) -> Iterator[Any] | None:
    """An iterator over the entries, or None when ``messages`` is not a batch of them."""
    if isinstance(messages, (str, bytes, Mapping, MonaMessage)) or hasattr(
        messages, "contextClass"
    ):
        return None  # one message (or text) where a batch was expected
    try:
        entries: Iterator[Any] = iter(messages)
    except TypeError:
        return None
    return entries


_ENTRY_FIELDS = (
    "message",
    "contextClass",
    "contextId",
    "exportTimestamp",
    "sendTimestamp",
    "action",
)


def _entry_values(item: Any) -> Mapping[str, Any]:
    """The entry's fields: a dict as it is, or the attributes of a message object.

    Any object with ``message`` and ``contextClass`` attributes is a message: our
    ``MonaMessage``, ``mona_sdk.MonaSingleMessage`` (whose ``__post_init__`` may delete
    one of its two timestamp attributes) or a user's own class with the same fields.
    """
    if isinstance(item, Mapping):
        return item
    if hasattr(item, "message") and hasattr(item, "contextClass"):
        return {name: getattr(item, name, None) for name in _ENTRY_FIELDS}
    raise ValueError(
        "expected a MonaMessage, a MonaSingleMessage (any object with 'message' and "
        f"'contextClass' attributes) or a dict, got {type(item).__name__}"
    )


def to_explicit(item: Any, default_action: str | None) -> ExplicitMessage:
    """Check one ``export_batch`` entry on the caller's thread; raise ValueError if unusable."""
    values = _entry_values(item)
    fields = values.get("message")
    context_class = values.get("contextClass")
    if context_class is None:
        context_class = values.get("arcClass")
    if not isinstance(fields, Mapping):
        raise ValueError(f"'message' must be a dict, got {type(fields).__name__}")
    if not isinstance(context_class, str) or not context_class:
        shown = safe_repr(context_class)
        raise ValueError(f"'contextClass' must be a non-empty string, got {shown}")
    context_id = values.get("contextId")
    timestamp = values.get("exportTimestamp")
    if timestamp is None:
        timestamp = values.get("sendTimestamp")
    action = check_action(values.get("action")) or check_action(default_action)
    fields = dict(fields)
    if not _STR_ONLY.issuperset(map(type, fields)):  # a key that is not plain text
        fields = printable_keys(fields, context_class)
    return ExplicitMessage(
        context_class,
        None if context_id is None else str(context_id),
        fields,
        timestamp,
        action,
    )
