"""Getting one batch to the backend, and accounting for every message of it once.

Transient failures (no connection, timeouts, 408/409/429/5xx) are retried with
exponential backoff and full jitter, or after the server's ``Retry-After``; ``flush``
cuts a backoff short (never a ``Retry-After``) and shutdown ends the waiting. A batch
the backend refuses as too large (413) is split in halves and each half sent, down to
the one message that is too large, which alone is dropped. What is still unsent when
retries run out goes to the disk spool, resent as soon as the backend answers again.

Every send of a batch carries its idempotency key (``WireBatch.key``). When a send may
have been stored without an answer (a timeout) and a later one succeeds, the batch may
be stored twice, unless the backend said it honours keys (``Idempotent-Replayed``):
those messages are counted in ``possibly_duplicated`` and logged.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from .._util import jsonwire
from .._util.log import limited, logger
from .._util.signalsafe import WakeAll
from .._util.stats import ExportStats
from ..config import MonaConfig
from ..transports.base import SendResult, Transport, WireBatch
from .outcome import TOO_LARGE, Outcome, log_failed, report
from .spool import Spool, SpoolFile

__all__ = ["Delivery", "Progress"]


def _never() -> bool:
    return False


class Progress(Protocol):
    """Told when each POST of a batch begins and ends; ``begin_send`` False: do not send."""

    def begin_send(self) -> bool: ...

    def end_send(self) -> None: ...


class Delivery:
    """Sends batches for the sender threads (and ``replay``); accounts for every message."""

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
        self.stopping = False  # shutdown: no more waiting, no more retries
        self._backoff_waits = WakeAll()  # the senders' backoff sleeps, which flush cuts short
        self._encoded = bool(getattr(transport, "encoded_messages", False))
        # A Retry-After holds back the whole backend, not only the batch that got it:
        # the other senders (and the spool) wait for it too.
        self._not_before = 0.0

    def wake(self, stopping: bool = False) -> None:
        """Cut backoff waits short (flush); with ``stopping``, end all waits (shutdown).

        Takes no lock: safe from a signal handler."""
        if stopping:
            self.stopping = True
        self._backoff_waits.wake_all()

    # -- one batch, start to end ------------------------------------------------------

    def deliver(
        self,
        batch: WireBatch,
        from_spool: SpoolFile | None = None,
        account_if: Callable[[Outcome], bool] | None = None,
        retry: bool = True,
        progress: Progress | None = None,
    ) -> Outcome:
        """Send ``batch`` until it lands, is refused, or retries run out; then account.

        ``account_if`` is asked once, before accounting: False when someone else
        (shutdown) has accounted for the batch meanwhile, so it is never counted twice,
        or when the caller keeps what was not sent to try again itself (``replay``).
        ``progress`` hears when each POST begins and ends (the sender pool's ledger).
        """
        outcome = Outcome(total=len(batch))
        # A spooled batch gets one try per round: the spool itself is the retry.
        self._send(batch, outcome, retry and from_spool is None, progress)
        if account_if is None or account_if(outcome):
            self._account(outcome, batch, from_spool)
        return outcome

    def _send(
        self, batch: WireBatch, outcome: Outcome, retry: bool, progress: Progress | None
    ) -> None:
        result = self._attempts(batch, outcome, retry, progress)
        if result.status == 413 and result.failed == result.total and not result.sent:
            if len(batch) > 1:  # refused as a whole for its size: each half on its own
                middle = len(batch) // 2
                for number, half in enumerate((batch[:middle], batch[middle:])):
                    half_batch = WireBatch(half, key=f"{batch.key}.{number}")
                    self._send(half_batch, outcome, retry, progress)
                return
            outcome.too_large += 1
            limited(
                logging.ERROR,
                "too large",
                "mona_middleware: the backend refused a %s message as too large (HTTP 413); "
                "it was dropped (lower max_message_bytes to cut its largest fields)",
                _class_of(batch[0]),
            )
            return
        outcome.sent += result.sent
        outcome.refused.update(result.failure_reasons)
        if result.retryable:
            outcome.unsent.append(batch)

    def _attempts(
        self, batch: WireBatch, outcome: Outcome, retry: bool, progress: Progress | None
    ) -> SendResult:
        """Send until the batch lands, is refused for good, or retries run out."""
        deadline = time.monotonic() + self.config.retry_max_time
        attempt = 0
        while True:
            if progress is not None and not progress.begin_send():
                return SendResult.transient(len(batch), "handed back at shutdown")
            try:
                result = self._post(batch)
            finally:
                if progress is not None:
                    progress.end_send()
            outcome.last = result
            if result.fields_dropped:
                self.stats.add("fields_dropped", result.fields_dropped)
            if result.sent and batch.ambiguous and result.replayed is None:
                self._possibly_duplicated(batch, result.sent, outcome)
            if result.ambiguous:
                batch.ambiguous = True
            if not result.retryable:
                return result
            attempt += 1
            delay, strict = self._delay(result, attempt)
            out_of_time = time.monotonic() + delay > deadline
            if not retry or attempt > self.config.max_retries or out_of_time or self.stopping:
                return result
            self.stats.add("retries")
            outcome.retries += 1
            if not self._sleep(delay, strict):
                return result

    def _possibly_duplicated(self, batch: WireBatch, count: int, outcome: Outcome) -> None:
        outcome.duplicated += count
        limited(
            logging.WARNING,
            "possibly duplicated",
            "mona_middleware: a batch of %d message(s) was sent again after a send that got "
            "no answer (%s); the backend did not say it honours idempotency keys, so it may "
            "store them twice (counted in stats()['possibly_duplicated'])",
            count,
            outcome.last.error if outcome.last else "unknown",
        )

    def _post(self, batch: WireBatch) -> SendResult:
        wait = self._not_before - time.monotonic()
        if wait > 0 and not self._sleep(wait, strict=True):
            return SendResult.transient(len(batch), "shut down while the server's Retry-After ran")
        started = time.monotonic()
        try:
            result = self.transport.send(batch if self._encoded else _as_dicts(batch))
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
        waits = self._backoff_waits
        wakes = waits.generation
        while not self.stopping:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return True
            waits.sleep(remaining)
            if waits.generation != wakes and not strict:
                return True
        return False

    # -- accounting: the one place ---------------------------------------------------

    def _account(self, outcome: Outcome, batch: WireBatch, from_spool: SpoolFile | None) -> None:
        stats = self.stats
        stats.add("messages_sent", outcome.sent)
        if outcome.duplicated:
            stats.add("possibly_duplicated", outcome.duplicated)
        if from_spool is not None:
            stats.add("messages_resent_from_spool", outcome.sent)
        if outcome.complete:
            stats.add("batches_sent")
            if from_spool is not None:  # a file from the spool: there is one
                self.spool.done(from_spool)  # type: ignore[union-attr]
            return
        stats.add("batches_failed")
        refused = sum(outcome.refused.values())
        if refused:
            stats.add("messages_failed", refused)
            stats.reject(outcome.refused)
            stats.drop("rejected by the backend", refused)
        if outcome.too_large:
            stats.add("messages_failed", outcome.too_large)
            stats.drop(TOO_LARGE, outcome.too_large)
        if outcome.unsent:
            self.backend_ok = False
            self._keep_for_later(outcome, from_spool)
        elif from_spool is not None:  # (a file from the spool: there is one)
            self.spool.done(from_spool)  # type: ignore[union-attr]  # refused for good: not again
        if self.config.log_failed_messages and (refused or not self._spooled(outcome)):
            log_failed(batch, outcome)
        report(outcome, self.transport.name, self.config.error_handler)

    def _keep_for_later(self, outcome: Outcome, from_spool: SpoolFile | None) -> None:
        """Out of retries: back to the spool, or counted as lost."""
        unsent = outcome.unsent
        # A file from the spool (from_spool): there is one, hence the ignores.
        if from_spool is not None and len(unsent) == 1 and len(unsent[0]) == outcome.total:
            self.spool.release(from_spool)  # type: ignore[union-attr]  # all of it, as it was: the file stays
            return
        if from_spool is not None:
            self.spool.done(from_spool)  # type: ignore[union-attr]  # what was sent is gone; the rest is written anew
        error = outcome.last.error if outcome.last else "unknown"
        for batch in unsent:
            if self.spool is not None and self.spool.write(batch):
                limited(
                    logging.WARNING,
                    "spooled",
                    "mona_middleware: backend unavailable (%s); %d message(s) "
                    "kept in the spool %s to resend later",
                    error,
                    len(batch),
                    self.spool.directory,
                )
            else:
                self.stats.drop(f"send failed: {error}", len(batch))

    def _spooled(self, outcome: Outcome) -> bool:
        return self.spool is not None and bool(outcome.unsent)

    # -- the spool ----------------------------------------------------------------------

    def resend_spooled(self, more_work: Callable[[], bool], probe: bool = False) -> None:
        """Resend spooled batches while the backend answers and no fresh batch is waiting.

        With ``probe``, try one batch even if the last send failed: the backend may be back.
        """
        spool = self.spool
        while spool is not None and (self.backend_ok or probe) and not self.stopping:
            if more_work() or self.switched_off():
                return  # the kill switch holds the spool back too: it stays on disk
            probe = False
            item = spool.claim()
            if item is None:
                return
            messages = spool.load(item)
            if not messages:  # load() counted and removed an unreadable file
                continue
            if not self.deliver(messages, from_spool=item).complete:
                return


def _as_dicts(batch: WireBatch) -> WireBatch:
    """For a transport that takes dicts (a user's own): each message decoded, same key."""
    return WireBatch(map(jsonwire.decoded, batch), key=batch.key, ambiguous=batch.ambiguous)


def _class_of(message: Any) -> str:
    try:
        return str(jsonwire.decoded(message).get("arcClass"))
    except Exception:
        return "?"
