"""Validation of export batches, with Mona's split between batch and message errors.

A batch that cannot be read at all (not an object, no ``messages`` list, a bad
``defaultAction``) is rejected whole with a ``topLevelError``. Inside a readable batch
each message is checked alone: the valid ones are stored and the others are reported
by index in ``failure_reasons``, so one bad message never costs the rest of the batch.

What SQLite, the read API or the summaries could not carry is refused here, per message:
text that is not UTF-8 (a lone surrogate such as ``"\\ud800"``), integers beyond 64 bits,
non-finite numbers (``1e400`` decodes to infinity), keys that are not strings, values
nested deeper than ``MAX_DEPTH``, and class names, context ids and field names longer
than ``MAX_NAME`` characters (they are listed on every page; their values may be long).

What would make one request cost without bound is refused whole, with ``TooLarge``
(413): more than ``MAX_MESSAGES`` messages, or a message with more than ``MAX_FIELDS``
fields. Mona-compatible clients split a refused batch and resend the halves.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .._util.protocol import ACTIONS, INT_RANGE, OVERWRITE

MAX_DEPTH = 100
MAX_MESSAGES = 10_000
MAX_FIELDS = 1_000
MAX_NAME = 1_000


class BatchError(ValueError):
    """The whole batch is unreadable; the message becomes the ``topLevelError``."""


class TooLarge(BatchError):
    """The batch is readable but larger than one request may be (answered 413)."""


def _shown(value: object, limit: int = 60) -> str:
    """``repr`` of a client's value, cut: an error message must not echo megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class Message:
    """One valid message, normalised: the action is resolved and the id is never empty."""

    index: int
    context_class: str
    context_id: str
    fields: dict[str, Any]
    action: str
    timestamp: float | None


@dataclass
class Batch:
    """A readable batch: its valid messages and, by index, why the others were refused."""

    user_id: str
    messages: list[Message] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    default_action: str | None = None
    sample_config_name: str | None = None

    @property
    def total(self) -> int:
        return len(self.messages) + len(self.failures)


def parse_timestamp(value: object) -> float | None:
    """Unix seconds from a number or an ISO-8601 string; ``None`` stays ``None``.

    Raises ``ValueError`` for anything else, as Mona refuses such a message.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be a number, an ISO-8601 string or null")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds):
            raise ValueError("must be a finite number")
        return seconds
    if isinstance(value, str):
        text = value.strip()
        # datetime.fromisoformat only learnt the "Z" suffix in Python 3.11.
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 date") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    raise ValueError("must be a number, an ISO-8601 string or null")


def _check_action(value: object, name: str) -> str | None:
    if value is None or (isinstance(value, str) and value in ACTIONS):
        return value
    raise ValueError(f"{name} must be one of {sorted(ACTIONS)} or null, not {_shown(value)}")


def _check_text(text: str, what: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{what} is not valid UTF-8 ({exc.reason})") from None


def check_fields(fields: dict[Any, Any]) -> None:
    """Raise ``ValueError`` unless every key and value can be stored and shown.

    Iterative, so a deeply nested value costs no recursion before it is refused.
    """
    stack: list[tuple[Any, int, str]] = []
    for key, value in fields.items():
        where = _field_name(key)
        stack.append((value, 2, where))
        while stack:
            value, depth, where = stack.pop()
            _check_value(value, depth, where, stack)


def _field_name(key: object) -> str:
    if not isinstance(key, str):
        raise ValueError(f"field names must be strings, not {type(key).__name__}")
    _check_text(key, "a field name")
    if len(key) > MAX_NAME:
        raise ValueError(f"field {key[:60]!r}...: names may be at most {MAX_NAME} characters")
    return f"field {key[:60]!r}"


def _check_name(text: str, what: str) -> None:
    _check_text(text, what)
    if len(text) > MAX_NAME:
        raise ValueError(f"{what} may be at most {MAX_NAME} characters, not {len(text)}")


def _check_value(value: Any, depth: int, where: str, stack: list[tuple[Any, int, str]]) -> None:
    if isinstance(value, str):
        _check_text(value, f"{where}: a string")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise ValueError(f"{where}: integers must fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: numbers must be finite")
    elif isinstance(value, (dict, list)):
        if depth > MAX_DEPTH:
            raise ValueError(f"{where}: values may be nested at most {MAX_DEPTH} levels deep")
        if isinstance(value, list):
            stack.extend((item, depth + 1, where) for item in value)
            return
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be strings, not {type(key).__name__}")
            _check_text(key, f"{where}: a key")
            stack.append((item, depth + 1, where))
    else:
        raise ValueError(f"{where}: {type(value).__name__} is not a JSON value")


def parse_message(index: int, raw: object, default_action: str | None) -> Message:
    """Validate one wire message; raises ``ValueError`` with the reason to report."""
    if not isinstance(raw, dict):
        raise ValueError("a message must be a JSON object")
    context_class = raw.get("arcClass")
    if not isinstance(context_class, str) or not context_class:
        hint = " (the SDK's contextClass is sent as arcClass)" if "contextClass" in raw else ""
        raise ValueError("arcClass must be a non-empty string" + hint)
    _check_name(context_class, "arcClass")
    fields = raw.get("message")
    if not isinstance(fields, dict) or not fields:
        raise ValueError("message must be a non-empty JSON object")
    check_fields(fields)
    context_id = raw.get("contextId")
    if context_id is not None and not isinstance(context_id, str):
        raise ValueError("contextId must be a string or null")
    if context_id:
        _check_name(context_id, "contextId")
    action = _check_action(raw.get("action"), "action")
    stamp = raw.get("exportTimestamp")
    if stamp is None:
        stamp = raw.get("sendTimestamp")
    try:
        timestamp = parse_timestamp(stamp)
    except ValueError as exc:
        raise ValueError(f"exportTimestamp {exc}") from None
    return Message(
        index=index,
        context_class=context_class,
        # Mona makes an id for a message without one; that context can never be updated.
        context_id=context_id or str(uuid.uuid4()),
        fields=fields,
        action=action or default_action or OVERWRITE,
        timestamp=timestamp,
    )


def _check_user_id(user_id: str) -> None:
    try:
        _check_text(user_id, "userId")
    except ValueError as exc:
        raise BatchError(str(exc)) from None


def parse_batch(
    body: object, max_messages: int = MAX_MESSAGES, max_fields: int = MAX_FIELDS
) -> Batch:
    """Split a decoded export body into valid messages and per-index failures.

    Raises ``TooLarge`` before looking at any message when there are more than
    ``max_messages``, or at the first message with more than ``max_fields`` fields.
    """
    if not isinstance(body, dict):
        raise BatchError("the body must be a JSON object")
    user_id = body.get("userId")
    if not isinstance(user_id, str) or not user_id:
        raise BatchError("userId must be a non-empty string")
    if len(user_id) > MAX_NAME:
        raise BatchError(f"userId may be at most {MAX_NAME} characters, not {len(user_id)}")
    _check_user_id(user_id)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BatchError("messages must be a JSON array")
    if len(messages) > max_messages:
        raise TooLarge(
            f"{len(messages)} messages in one request; at most {max_messages}: split the batch"
        )
    for index, raw in enumerate(messages):
        fields = raw.get("message") if isinstance(raw, dict) else None
        if isinstance(fields, dict) and len(fields) > max_fields:
            raise TooLarge(
                f"message {index} has {len(fields)} fields; at most {max_fields} per message"
            )
    sample_config = body.get("sampleConfigName")
    if sample_config is not None and not isinstance(sample_config, str):
        raise BatchError("sampleConfigName must be a string or null")
    try:
        default_action = _check_action(body.get("defaultAction"), "defaultAction")
    except ValueError as exc:
        raise BatchError(str(exc)) from None
    batch = Batch(user_id, default_action=default_action, sample_config_name=sample_config)
    for index, raw in enumerate(messages):
        try:
            batch.messages.append(parse_message(index, raw, default_action))
        except ValueError as exc:
            batch.failures[str(index)] = str(exc)
    return batch
