"""Log correlation: the current Mona context's id and class on every log line.

    handler.addFilter(ContextFilter())    # records get mona_context_id, mona_context_class
    structlog.configure(processors=[add_mona_context, ...])

Both read the context of the thread or asyncio task that logs, so two concurrent
requests' lines each carry their own id. Outside a context both values are ``""``, so a
format string that names them never fails. structlog is optional: the processor is a
plain function and imports nothing.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from ._api.context import current_context

__all__ = ["ContextFilter", "add_mona_context", "context_fields"]

ID_FIELD = "mona_context_id"
CLASS_FIELD = "mona_context_class"


def context_fields() -> tuple[str, str]:
    """``(context id, context class)`` of the current context, ``("", "")`` outside one."""
    ctx = current_context()
    if ctx is None:
        return "", ""
    return ctx.context_id, ctx.context_class


class ContextFilter(logging.Filter):
    """A ``logging.Filter`` that adds ``mona_context_id`` and ``mona_context_class`` to
    each record and lets every record through.

    Put it on a handler (records from any logger) or a logger (its own records only):

    >>> handler = logging.StreamHandler()
    >>> handler.addFilter(ContextFilter())
    >>> handler.setFormatter(logging.Formatter("%(mona_context_id)s %(message)s"))
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.mona_context_id, record.mona_context_class = context_fields()
        return True


def add_mona_context(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: ``mona_context_id`` and ``mona_context_class`` in each event.

    >>> add_mona_context(None, "info", {"event": "scored"})
    {'event': 'scored', 'mona_context_id': '', 'mona_context_class': ''}
    """
    event_dict[ID_FIELD], event_dict[CLASS_FIELD] = context_fields()
    return event_dict
