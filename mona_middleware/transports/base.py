"""The one small interface every transport implements, and what a send returns."""

from __future__ import annotations

import abc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SendResult:
    """What happened to one batch: how many messages landed, and why the others did not.

    ``retryable`` marks a failure of the whole batch that may pass later (no connection,
    a timeout, 408/429/5xx); ``failed`` counts messages the backend refused for good.
    """

    total: int
    sent: int = 0
    failed: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    retryable: bool = False
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None

    @classmethod
    def ok(cls, total: int, status: int | None = None) -> SendResult:
        return cls(total=total, sent=total, status=status)

    @classmethod
    def transient(
        cls, total: int, error: str, status: int | None = None, retry_after: float | None = None
    ) -> SendResult:
        return cls(total=total, retryable=True, error=error, status=status, retry_after=retry_after)

    @classmethod
    def rejected(cls, total: int, reason: str, status: int | None = None) -> SendResult:
        return cls(
            total=total,
            failed=total,
            failure_reasons=Counter({reason: total}),
            error=reason,
            status=status,
        )


class Transport(abc.ABC):
    """Moves batches of wire messages somewhere; called only from the exporter's threads.

    ``send`` must not raise for backend trouble (it returns a ``SendResult``); it may be
    called from several sender threads at once.
    """

    name: str = "transport"

    @abc.abstractmethod
    def send(self, messages: list[dict[str, Any]]) -> SendResult:
        """Send one batch of wire messages (dicts as ``message.wire_message`` builds)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files; interrupts waits in progress."""

    def after_fork(self) -> None:  # noqa: B027 - optional hook
        """Drop state a forked child must not share with its parent (sockets, locks)."""

    def describe(self) -> str:
        """Where messages go, for logs and ``check``; never includes secrets."""
        return self.name

    def spool_key(self) -> str:
        """A stable name for the destination, so each backend gets its own spool."""
        return self.describe()
