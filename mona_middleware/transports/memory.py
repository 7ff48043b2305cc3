"""Keeps what would have been sent, as JSON really carries it, for tests and the pytest fixture."""

from __future__ import annotations

import json
import threading
from typing import Any

from ..aggregate import aggregate
from .base import SendResult, Transport


class InMemoryTransport(Transport):
    """Records every batch after a JSON round trip, so tests see exactly the wire data.

    >>> import mona_middleware as mona
    >>> transport = InMemoryTransport()
    >>> _ = mona.configure(transport=transport)
    >>> with mona.context("MODEL", context_id="1"):
    ...     mona.export({"score": 1})
    True
    >>> mona.flush(5)
    True
    >>> transport.contexts()[("MODEL", "1")]
    {'score': 1}
    """

    name = "memory"
    encoded_messages = True

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.batches: list[list[dict[str, Any]]] = []

    def send(self, messages: list[Any]) -> SendResult:
        batch = json.loads(
            b"[" + b",".join(m if type(m) is bytes else _strict(m) for m in messages) + b"]"
        )
        with self._changed:
            self.batches.append(batch)
            self._changed.notify_all()
        return SendResult.ok(len(batch))

    @property
    def messages(self) -> list[dict[str, Any]]:
        """All messages received, in order."""
        with self._changed:
            return [message for batch in self.batches for message in batch]

    def contexts(self) -> dict[tuple[str, str | None], dict[str, Any]]:
        """The records Mona would store: ``{(context_class, context_id): fields}``."""
        return aggregate(self.messages)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` messages arrived, or ``timeout`` passes."""
        with self._changed:
            return self._changed.wait_for(
                lambda: sum(map(len, self.batches)) >= count, timeout=timeout
            )

    def clear(self) -> None:
        with self._changed:
            self.batches.clear()


def _strict(message: Any) -> bytes:
    return json.dumps(message, allow_nan=False).encode()
