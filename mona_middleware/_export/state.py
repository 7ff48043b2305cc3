"""The exporter's lifecycle, as one value every stage can read."""

from __future__ import annotations

import enum

__all__ = ["State"]


class State(enum.Enum):
    """Where the exporter is in its life (``stats()["state"]`` shows the value)."""

    UNOPENED = "new"  # nothing started yet: the first item starts it
    OPEN = "running"  # the batching and sender threads run
    INLINE = "inline"  # no thread may start: items are sent on the caller's thread
    CLOSED = "stopped"  # shut down: later items are counted as dropped
