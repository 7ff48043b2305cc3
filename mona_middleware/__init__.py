"""Per-request Mona monitoring: contexts that follow the request, ``export()`` from
anywhere in it, and one shared exporter that never blocks or fails the app.

>>> import mona_middleware as mona
>>> with mona.context("MY_MODEL") as ctx:
...     mona.export({"score": 0.93, "model_version": "v3"})
True

Nothing is started at import: the exporter's threads start with the first context.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from . import _runtime
from ._log import limited
from ._version import __version__
from .config import MonaConfig
from .context import MonaContext, context, current_context, export, sub_context
from .decorators import monitor
from .errors import MonaConfigError, MonaError, MonaExportError
from .message import MonaMessage
from .threads import MonaThread, wrap

configure = _runtime.configure
flush = _runtime.flush
shutdown = _runtime.shutdown
stats = _runtime.stats

__all__ = [
    "MonaConfig",
    "MonaConfigError",
    "MonaContext",
    "MonaError",
    "MonaExportError",
    "MonaMessage",
    "MonaThread",
    "__version__",
    "configure",
    "context",
    "current_context",
    "export",
    "export_batch",
    "flush",
    "monitor",
    "shutdown",
    "stats",
    "sub_context",
    "wrap",
]


def export_batch(messages: Iterable[Any], *, default_action: str | None = None) -> int:
    """Queue explicit messages (each with its own class, id and timestamp), e.g. a backfill.

    Accepts ``MonaMessage`` objects or dicts with mona_sdk's keys (``message``,
    ``contextClass``, ``contextId``, ``exportTimestamp``, ``action``). Returns how many
    were queued; an unusable entry is logged with its index and reason, the rest go out.
    Anything but an iterable of entries (``None``, one dict) is refused as a whole: 0.

    >>> export_batch([MonaMessage(message={"rows": 10}, contextClass="NIGHTLY_JOB")])
    1
    """
    from .prepare import ExplicitBatch, to_explicit
    from .sampling import keep, rate_for

    config = _runtime.config()
    if config.disable_all or _runtime.disabled():
        return 0
    items = _batch_items(messages)
    if items is None:
        from .context import _refuse

        _refuse(f"export_batch() takes an iterable of messages, got {type(messages).__name__}")
        return 0
    batch = ExplicitBatch()
    sampled = config.sampling_rate < 1 or bool(config.sampling_rates)
    for index, item in enumerate(items):
        try:
            message = to_explicit(item, default_action)
            if sampled and not keep(message.context_id, rate_for(config, message.context_class)):
                _runtime.count_sampled_out()
                continue
            batch.append(message)
        except ValueError as exc:
            _runtime.count_refused("invalid message")
            if config.raise_export_exceptions:
                raise MonaExportError(f"export_batch message {index}: {exc}") from None
            limited(
                40,
                f"batch:{exc}",
                "mona_middleware: export_batch message %d skipped: %s",
                index,
                exc,
            )
    if batch and _runtime.enqueue(batch):
        return len(batch)
    return 0


def _batch_items(messages: Any) -> Iterator[Any] | None:
    """An iterator over the entries, or None when ``messages`` is not a batch of them."""
    if isinstance(messages, (str, bytes, Mapping, MonaMessage)):
        return None  # one message (or text) where a batch was expected
    try:
        return iter(messages)
    except TypeError:
        return None
