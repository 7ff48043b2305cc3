"""What the exporter's queue holds, as the exporter sees it.

The exporter never imports the API side: a closed context reaches it as anything with
the ``ClosedContext`` shape (``MonaContext`` has it), and ``export_batch``'s messages as
an ``ExplicitBatch``. These types are the exporter's own, so the dependency points one
way: the API builds them, the exporter reads them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "BeforeSend",
    "ClosedContext",
    "ExplicitBatch",
    "ExplicitMessage",
    "FlushMarker",
    "Op",
    "Part",
    "is_explicit",
]

# An op as the context records it: a bare dict is an OVERWRITE with no timestamp
# (the common case, kept allocation-free); otherwise (action, fields, timestamp).
Op = dict[str, Any] | tuple[str | None, dict[str, Any], Any]
# A coalesced message before it goes on the wire: (action, fields, timestamp or None).
Part = tuple[str, dict[str, Any], Any]
# The user's ``before_send(message) -> message or None`` (a web or Celery option), run on
# each wire message on the batching thread: the message, changed or not, or None to drop it.
BeforeSend = Callable[[dict[str, Any]], dict[str, Any] | None]


class ClosedContext(Protocol):
    """A context that has closed, read once by the exporter's batching thread."""

    context_class: str
    export_timestamp: Any
    opened_at: float
    late: bool  # holds exports made after its request closed (no global fields again)
    before_send: BeforeSend | None

    @property
    def context_id(self) -> str: ...

    @property
    def in_request(self) -> bool:
        """Closed while a web request is served: a full queue makes it wait only briefly.

        Read only when the queue is full, on the closing thread.
        """
        ...

    def take_ops(self) -> list[Op]:
        """The recorded ops in order, taken (called once)."""
        ...

    def take_own(self) -> dict[str, Any] | None:
        """Fields the package measured itself, JSON-ready, applied last (called once)."""
        ...

    def ops(self) -> list[Op]:
        """The recorded ops without taking them (to count what a drop loses)."""
        ...


@dataclass(frozen=True)
class ExplicitMessage:
    """A message from ``export_batch``: its own class, id, timestamp and action."""

    context_class: str
    context_id: str | None
    fields: dict[str, Any]
    timestamp: Any
    action: str | None


class ExplicitBatch(list[ExplicitMessage]):
    """The queue item for one ``export_batch`` call (a list of ``ExplicitMessage``)."""

    # Identity, not contents: the queue finds and removes this very batch (``deque.remove``).
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__  # type: ignore[assignment]  # list declares __hash__ None


class FlushMarker:
    """Put in the queue by ``flush``: done once every batch before it has been answered.

    Its ``done`` event is its own, so the ``flush`` waiting for it (a signal handler's,
    say) shares no lock with the code it may have interrupted.
    """

    __slots__ = ("done", "upto")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.upto = -1


def is_explicit(item: Any) -> bool:
    """An ``ExplicitBatch`` (else a ``ClosedContext``)."""
    return isinstance(item, list)
