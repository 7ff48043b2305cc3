"""A pytest plugin so users can assert on what their app exported, per context.

Installed with the package (entry point ``pytest11``); it only defines a fixture:

    def test_predict(client, mona_capture):
        client.post("/predict", json={...})
        ctx = mona_capture.only("PREDICT")
        assert ctx["score"] > 0.5
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._runtime import process
from .transports.memory import InMemoryTransport

__all__ = ["MonaCapture", "mona_capture"]


class MonaCapture:
    """What the app exported during one test, aggregated as Mona would store it."""

    def __init__(self, transport: InMemoryTransport) -> None:
        self.transport = transport

    def flush(self, timeout: float = 5.0) -> bool:
        return process.flush(timeout)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The wire messages, flushed first."""
        self.flush()
        return self.transport.messages

    def contexts(
        self, context_class: str | None = None
    ) -> dict[tuple[str, str | None], dict[str, Any]]:
        """``{(class, id): fields}``, optionally for one context class."""
        self.flush()
        found = self.transport.contexts()
        if context_class is None:
            return found
        return {key: fields for key, fields in found.items() if key[0] == context_class}

    def only(self, context_class: str) -> dict[str, Any]:
        """The fields of the single context of ``context_class``; fails if not exactly one."""
        found = self.contexts(context_class)
        assert len(found) == 1, f"expected one {context_class!r} context, found {len(found)}"
        return next(iter(found.values()))

    def clear(self) -> None:
        self.flush()
        self.transport.clear()


@pytest.fixture
def mona_capture() -> Iterator[MonaCapture]:
    """Route every export of the test to memory; restore the previous set-up afterwards."""
    transport = InMemoryTransport()
    saved = process.detach()
    process.configure(transport=transport, flush_interval=0.05)
    process.pin_transport(transport)  # an app configuring itself keeps sending here
    try:
        yield MonaCapture(transport)
    finally:
        process.shutdown(5)
        process.restore(saved)
