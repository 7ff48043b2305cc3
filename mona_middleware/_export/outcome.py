"""What became of one batch after every send of it, and telling the user about it.

``Delivery`` fills an ``Outcome`` while it sends (halves of a split batch included) and
accounts for it once; ``report`` and ``log_failed`` are what the user hears of a batch
that did not land whole: a rate-limited log line, the ``error_handler``, and, with
``MONA_SDK_SHOULD_LOG_FAILED_MESSAGES``, the messages themselves.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .._util import jsonwire
from .._util.log import limited, logger
from ..config import ErrorHandler
from ..transports.base import SendResult, WireBatch

__all__ = ["TOO_LARGE", "Outcome", "log_failed", "report"]

TOO_LARGE = "too large for the backend (HTTP 413)"


@dataclass
class Outcome:
    """What became of one batch's messages after every send of it (halves included)."""

    total: int
    sent: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # the backend's reasons
    too_large: int = 0
    unsent: list[WireBatch] = field(default_factory=list)  # out of retries: spool them
    duplicated: int = 0  # sent again after an unanswered send, to a backend keys may not stop
    retries: int = 0
    last: SendResult | None = None

    @property
    def complete(self) -> bool:
        return self.sent == self.total


def log_failed(batch: WireBatch, outcome: Outcome) -> None:
    """``MONA_SDK_SHOULD_LOG_FAILED_MESSAGES``: the lost messages themselves, at ERROR.

    Mona names refused messages by their index in the batch; when it does, only
    those are logged, else the whole batch (it was lost as a whole).
    """
    failed: list[Any] = [jsonwire.decoded(message) for message in batch]
    reasons = outcome.last.failure_reasons if outcome.last else {}
    if reasons:
        indices = {int(key) for key in reasons if str(key).isdigit()}
        if indices:
            failed = [message for i, message in enumerate(batch) if i in indices]
    logger.error("mona_middleware: failed to send the following to Mona: %s", failed)


def report(outcome: Outcome, transport: str, handler: ErrorHandler | None) -> None:
    """A batch that did not land whole: a log line (rate-limited) and the error handler."""
    last = outcome.last or SendResult(total=outcome.total)
    failed = outcome.total - outcome.sent
    error = last.error or (TOO_LARGE if outcome.too_large else "unknown")
    limited(
        logging.ERROR,
        f"send:{error}",
        "mona_middleware: %d of %d message(s) not accepted by %s: %s",
        failed,
        outcome.total,
        transport,
        error,
    )
    if handler is None:
        return
    errors = dict(outcome.refused) or ({last.error: failed} if last.error else {})
    if outcome.too_large:
        errors[TOO_LARGE] = outcome.too_large
    try:
        handler(
            {
                "status": last.status,
                "total": outcome.total,
                "sent": outcome.sent,
                "failed": failed,
                "errors": errors,
                "retries": outcome.retries,
                "retryable": bool(outcome.unsent),
            }
        )
    except Exception:
        limited(
            logging.ERROR, "error_handler", "mona_middleware: error_handler raised", exc_info=True
        )
