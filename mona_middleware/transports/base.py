"""The one small interface every transport implements, what it is sent, and what a send
returns."""

from __future__ import annotations

import abc
import itertools
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._util import forks

__all__ = ["SendResult", "Transport", "WireBatch", "new_batch_key"]

_key_counter = itertools.count(1)
_key_prefix = os.urandom(8).hex()


def new_batch_key() -> str:
    """A key no other batch of any process gets: a random prefix per process, then a count.

    ``next()`` on ``itertools.count`` is atomic, so threads never share a key; a forked
    child renews the prefix (``renew_batch_keys``).
    """
    return f"{_key_prefix}{next(_key_counter):x}"


@forks.after_fork_in_child
def renew_batch_keys() -> None:
    """In a forked child: a prefix of its own, so it never repeats the parent's keys."""
    global _key_prefix, _key_counter
    _key_prefix, _key_counter = os.urandom(8).hex(), itertools.count(1)


if TYPE_CHECKING:
    _Messages = list[dict[str, Any]]
else:
    _Messages = list  # the same base at run time: no generic alias to subclass


class WireBatch(_Messages):
    """One batch of wire messages, with the ``Idempotency-Key`` that every send of it carries.

    The key stays the same on each retry and when the batch is spooled and resent, so a
    backend that honours keys stores the batch once however often it arrives.
    ``ambiguous`` records that an earlier send may have been stored (a timeout, a
    connection lost after the body went out): a later success may then be a duplicate.
    """

    __slots__ = ("ambiguous", "key")

    def __init__(self, messages: Any = (), key: str | None = None, ambiguous: bool = False):
        super().__init__(messages)
        self.key = key or new_batch_key()
        self.ambiguous = ambiguous

    # Identity, not contents: two batches of equal messages are still two batches.
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__  # type: ignore[assignment]


@dataclass
class SendResult:
    """What happened to one batch: how many messages landed, and why the others did not.

    ``retryable`` marks a failure of the whole batch that may pass later (no connection,
    a timeout, 408/429/5xx); ``failed`` counts messages the backend refused for good.
    ``ambiguous`` marks a failure after which the backend may still have stored the batch
    (a timeout, a connection lost once the body was sent, a gateway's 502/504).
    ``replayed`` is the backend's ``Idempotent-Replayed`` answer: None when it did not
    say (it may ignore keys), else whether it had stored this batch's key before.
    ``fields_dropped`` counts fields the transport removed to fit a size limit.
    """

    total: int
    sent: int = 0
    failed: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    retryable: bool = False
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    ambiguous: bool = False
    replayed: bool | None = None
    fields_dropped: int = 0

    @classmethod
    def ok(cls, total: int, status: int | None = None) -> SendResult:
        return cls(total=total, sent=total, status=status)

    @classmethod
    def transient(
        cls,
        total: int,
        error: str,
        status: int | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> SendResult:
        return cls(
            total=total,
            retryable=True,
            error=error,
            status=status,
            retry_after=retry_after,
            ambiguous=ambiguous,
        )

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
    # Whether ``send`` takes messages already encoded as JSON bytes (the package's own
    # transports do); any other gets each message as a dict, decoded for it.
    encoded_messages: bool = False

    @abc.abstractmethod
    def send(self, messages: list[dict[str, Any]]) -> SendResult:
        """Send one batch of wire messages (dicts as ``protocol.wire_message`` builds, or
        their JSON as bytes when ``encoded_messages`` is true).

        The exporter passes a ``WireBatch``; its ``key`` is the batch's idempotency key.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files; interrupts waits in progress."""

    def interrupt(self) -> None:  # noqa: B027 - optional hook
        """Shutdown is near: end waits inside ``send`` (token retries), sends still work."""

    def after_fork(self) -> None:  # noqa: B027 - optional hook
        """Drop state a forked child must not share with its parent (sockets, locks)."""

    def describe(self) -> str:
        """Where messages go, for logs and ``check``; never includes secrets."""
        return self.name

    def spool_key(self) -> str:
        """A stable name for the destination, so each backend gets its own spool."""
        return self.describe()
