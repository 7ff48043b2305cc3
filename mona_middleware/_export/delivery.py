"""Getting one batch to the backend: retry what may pass later, spool what still fails.

Transient failures (no connection, timeouts, 408/429/5xx) are retried with exponential
backoff and full jitter, or after the server's ``Retry-After``; ``flush`` cuts a backoff
short (never a ``Retry-After``) and shutdown ends the waiting. A batch that runs out of
retries goes to the disk spool, which is resent as soon as the backend answers again.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from .._util.log import limited, logger
from .._util.stats import ExportStats
from ..config import MonaConfig
from ..transports.base import SendResult, Transport
from .spool import Spool, SpoolFile

__all__ = ["Delivery"]


def _never() -> bool:
    return False


class Delivery:
    """Sends batches for the exporter's sender threads and accounts for every message."""

    def __init__(
        self,
        config: MonaConfig,
        transport: Transport,
        stats: ExportStats,
        spool: Spool | None,
        switched_off: Callable[[], bool] = _never,
    ) -> None:
        self.config = config
        self.switched_off = switched_off  # the kill switch: the spool stays on disk
        self.transport = transport
        self.stats = stats
        self.spool = spool
        self.backend_ok = True  # worth trying the spool (set by every success)
        self._kick = threading.Condition()
        self._kicks = 0
        self._stopping = False
        # A Retry-After holds back the whole backend, not only the batch that got it:
        # the other senders (and the spool) wait for it too.
        self._not_before = 0.0

    def wake(self, stopping: bool = False) -> None:
        """Cut backoff waits short (flush); with ``stopping``, end all waits (shutdown)."""
        with self._kick:
            self._kicks += 1
            self._stopping = self._stopping or stopping
            self._kick.notify_all()

    def attempt(
        self, batch: list[dict[str, Any]], retry: bool = True
    ) -> tuple[SendResult, int, bool]:
        """Send until the batch lands, is refused for good, or retries run out.

        Returns (last result, retries made, gave up). Accounting is left to the caller
        (``settle``/``give_up``), which knows whether the batch is still its to account.
        """
        deadline = time.monotonic() + self.config.retry_max_time
        attempt = 0
        while True:
            result = self._send(batch)
            if not result.retryable:
                return result, attempt, False
            attempt += 1
            delay, strict = self._delay(result, attempt)
            out_of_time = time.monotonic() + delay > deadline
            if not retry or attempt > self.config.max_retries or out_of_time or self._stopping:
                return result, attempt - 1, True
            self.stats.add("retries")
            if not self._sleep(delay, strict):
                return result, attempt, True

    def deliver(self, batch: list[dict[str, Any]], from_spool: SpoolFile | None = None) -> bool:
        """``attempt`` and account; True when every message landed."""
        # A spooled batch gets one try per round: the spool itself is the retry.
        result, retries, gave_up = self.attempt(batch, retry=from_spool is None)
        if gave_up:
            self.give_up(result, batch, from_spool, retries)
            return False
        self.settle(result, from_spool, retries, batch)
        return result.sent == result.total

    def _send(self, batch: list[dict[str, Any]]) -> SendResult:
        wait = self._not_before - time.monotonic()
        if wait > 0 and not self._sleep(wait, strict=True):
            return SendResult.transient(len(batch), "shut down while the server's Retry-After ran")
        started = time.monotonic()
        try:
            result = self.transport.send(batch)
        except Exception as exc:  # a transport bug must not kill the sender thread
            logger.exception("mona_middleware: transport %s failed", self.transport.name)
            result = SendResult.transient(len(batch), f"transport error: {type(exc).__name__}")
        self.stats.observe_latency(time.monotonic() - started)
        if result.retry_after:
            until = time.monotonic() + min(result.retry_after, self.config.retry_after_cap)
            self._not_before = max(self._not_before, until)
        if result.sent:
            self.backend_ok = True
        elif result.retryable:
            self.backend_ok = False  # until the next success: the batcher spools instead
        return result

    def _delay(self, result: SendResult, attempt: int) -> tuple[float, bool]:
        """(seconds to wait, whether flush may not shorten it): Retry-After binds, backoff not."""
        config = self.config
        if result.retry_after is not None:
            return min(result.retry_after, config.retry_after_cap), True
        ceiling = min(config.retry_max_backoff, config.retry_backoff * 2 ** (attempt - 1))
        return random.uniform(0, ceiling), False

    def _sleep(self, delay: float, strict: bool) -> bool:
        """Wait; False when shutdown wants the batch now (it goes to the spool)."""
        end = time.monotonic() + delay
        with self._kick:
            kicks = self._kicks
            while not self._stopping:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return True
                self._kick.wait(remaining)
                if self._kicks != kicks and not strict:
                    return True
            return False

    def settle(
        self,
        result: SendResult,
        from_spool: SpoolFile | None,
        retries: int,
        batch: list[dict[str, Any]] | None = None,
    ) -> None:
        stats = self.stats
        stats.add("messages_sent", result.sent)
        if from_spool is not None:
            stats.add("messages_resent_from_spool", result.sent)
            self.spool.done(from_spool)  # sent, or refused for good: either way not again
        if result.sent == result.total:
            stats.add("batches_sent")
            return
        stats.add("batches_failed")
        stats.add("messages_failed", result.failed)
        stats.reject(result.failure_reasons)
        stats.drop("rejected by the backend", result.failed)
        self._report(result, retries)
        if batch is not None and self.config.log_failed_messages:
            self._log_failed(batch, result.failure_reasons)

    def give_up(
        self, result: SendResult, batch: list, from_spool: SpoolFile | None, retries: int
    ) -> None:
        """Out of retries (or shutting down): keep the batch in the spool, or count it lost."""
        self.stats.add("batches_failed")
        self.backend_ok = False
        if from_spool is not None:
            self.spool.release(from_spool)  # still in the spool, for the next attempt
        elif self.spool is not None and self.spool.write(batch):
            limited(
                30,
                "spooled",
                "mona_middleware: backend unavailable (%s); %d message(s) "
                "kept in the spool %s to resend later",
                result.error,
                len(batch),
                self.spool.directory,
            )
        else:
            self.stats.drop(f"send failed: {result.error}", len(batch))
            if self.config.log_failed_messages:
                self._log_failed(batch, {})
        self._report(result, retries)

    def _log_failed(self, batch: list[dict[str, Any]], reasons: Any) -> None:
        """``MONA_SDK_SHOULD_LOG_FAILED_MESSAGES``: the lost messages themselves, at ERROR.

        Mona names refused messages by their index in the batch; when it does, only
        those are logged, else the whole batch (it was lost as a whole).
        """
        failed = batch
        if isinstance(reasons, dict) and reasons:
            indices = {int(key) for key in reasons if str(key).isdigit()}
            if indices:
                failed = [message for i, message in enumerate(batch) if i in indices]
        logger.error("mona_middleware: failed to send the following to Mona: %s", failed)

    def _report(self, result: SendResult, retries: int) -> None:
        limited(
            40,
            f"send:{result.error}",
            "mona_middleware: %d of %d message(s) not accepted by %s: %s",
            result.total - result.sent,
            result.total,
            self.transport.name,
            result.error,
        )
        handler: Callable[[dict[str, Any]], Any] | None = self.config.error_handler
        if handler is None:
            return
        try:
            handler(
                {
                    "status": result.status,
                    "total": result.total,
                    "sent": result.sent,
                    "failed": result.total - result.sent,
                    "errors": dict(result.failure_reasons)
                    or ({result.error: result.total - result.sent} if result.error else {}),
                    "retries": retries,
                    "retryable": result.retryable,
                }
            )
        except Exception:
            limited(40, "error_handler", "mona_middleware: error_handler raised", exc_info=True)

    def drain_spool(self, more_work: Callable[[], bool], probe: bool = False) -> None:
        """Resend spooled batches while the backend answers and no fresh batch is waiting.

        With ``probe``, try one batch even if the last send failed: the backend may be back.
        """
        spool = self.spool
        while spool is not None and (self.backend_ok or probe) and not self._stopping:
            if more_work() or self.switched_off():
                return  # the kill switch holds the spool back too: it stays on disk
            probe = False
            item = spool.claim()
            if item is None:
                return
            messages = spool.load(item)
            if not messages:  # load() counted and removed an unreadable file
                continue
            if not self.deliver(messages, from_spool=item):
                return
