"""Turning queued items (closed contexts, explicit batches) into wire messages.

Runs on the exporter's batching thread: this is where the request's cheap records
become coalesced, converted, validated messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .._util import jsonwire
from .._util.log import limited, logger
from .._util.protocol import ADD, OVERWRITE, wire_message
from .._util.stats import ExportStats
from ..config import MonaConfig
from .coalesce import coalesce
from .convert import normalize_timestamp, sanitize_fields
from .items import BeforeSend, ClosedContext, ExplicitMessage, is_explicit

__all__ = [
    "context_messages",
    "default_timestamp",
    "global_fields",
    "message_count",
    "messages_from",
    "messages_op_by_op",
    "prepare",
]


def prepare(item: Any, config: MonaConfig, stats: ExportStats) -> list[dict[str, Any]]:
    """Wire messages for one queued item."""
    if is_explicit(item):
        return [m for m in (_explicit_message(e, config, stats) for e in item) if m is not None]
    return context_messages(item, config, stats)


def context_messages(ctx: ClosedContext, config: MonaConfig, stats: ExportStats) -> list[dict]:
    """Wire messages for one closed context: the general path, field by field."""
    return messages_from(ctx, ctx.take_ops(), ctx.take_own(), config, stats)


def default_timestamp(ctx: ClosedContext) -> Any:
    """When the context opened, to the ms, unless the user gave it one."""
    if ctx.export_timestamp is None:
        return int(ctx.opened_at * 1000 + 0.5) / 1000  # round(x, 3) goes through a string
    return normalize_timestamp(ctx.export_timestamp, ctx.context_class)


def messages_from(
    ctx: ClosedContext,
    taken: list[Any],
    own: dict[str, Any] | None,
    config: MonaConfig,
    stats: ExportStats,
) -> list[dict]:
    """Wire messages from a context's ops and own fields, already taken from it."""
    if len(taken) != 1 or type(taken[0]) is not dict:
        return messages_op_by_op(ctx, taken, own, config, stats)
    # Nearly every context: plain exports, merged into one dict as they came. The
    # general way (messages_op_by_op) gives the same message, with more calls and lists
    # (a property test pins the two together).
    context_class = ctx.context_class
    default_ts = default_timestamp(ctx)  # before any early return, as the general way
    clean, dropped = sanitize_fields(  # take_ops() copied it: ours to keep
        taken[0], context_class, filter_none=config.filter_none_fields, owned=True
    )
    if dropped:
        stats.add("fields_dropped", dropped)
    if own:
        clean.update(own)  # a fresh dict from sanitize_fields: ours to change
    if not clean:
        if dropped:
            stats.drop("no valid fields", 1)
        return []
    if config.global_fields and not ctx.late:
        clean = {**global_fields(config, context_class, stats), **clean}
    messages = [wire_message(context_class, ctx.context_id, clean, default_ts, OVERWRITE)]
    if ctx.before_send is not None:
        messages = _before_send(ctx.before_send, messages, stats)
    return messages


def messages_op_by_op(
    ctx: ClosedContext,
    taken: list[Any],
    own: dict[str, Any] | None,
    config: MonaConfig,
    stats: ExportStats,
) -> list[dict]:
    """``messages_from``'s general way, for any ops: each cleaned, then coalesced."""
    # Each export is cleaned before they are folded together: a value that is dropped
    # (None with filter_none_fields, NaN, an object JSON cannot carry) must leave what
    # an earlier export set for that key, as it would if each export were sent alone.
    context_class = ctx.context_class
    default_ts = default_timestamp(ctx)  # an invalid one is logged even if nothing goes
    ops = []
    emptied = False  # an export lost every field it had to conversion errors
    for op in taken:
        fields = op if type(op) is dict else op[1]
        clean, dropped = _clean(fields, context_class, config, stats)
        if clean:
            ops.append(clean if type(op) is dict else (op[0], clean, op[2]))
        elif dropped:
            emptied = True
    if own:  # JSON-ready already: no conversion; applied last, as when it was recorded
        if ops and type(ops[-1]) is dict:
            ops[-1].update(own)  # a fresh dict from sanitize_fields: ours to change
        else:
            ops.append(own)
    if not ops:  # nothing of its own survived: the global fields alone are not a context
        if emptied:
            stats.drop("no valid fields", 1)
        return []
    parts = coalesce(ops)
    if config.global_fields and not ctx.late:  # a late export must not reset them
        parts = _with_global_fields(parts, global_fields(config, context_class, stats))
    context_id = ctx.context_id
    messages = [
        wire_message(
            context_class,
            context_id,
            fields,
            default_ts if ts is None else normalize_timestamp(ts, context_class),
            action,
        )
        for action, fields, ts in parts
    ]
    if ctx.before_send is not None:
        messages = _before_send(ctx.before_send, messages, stats)
    return messages


def _before_send(hook: BeforeSend, messages: list[dict], stats: ExportStats) -> list[dict]:
    """The user's last word on each message: return it (changed or not), or None to drop it."""
    kept = []
    for message in messages:
        try:
            result = hook(message)
        except Exception:
            logger.exception("mona_middleware: before_send raised; the message is sent as it was")
            result = message
        if result is None:
            stats.drop("before_send returned None", 1)
        elif isinstance(result, dict) and isinstance(result.get("message"), dict):
            # The hook may have added anything: convert again, so one bad value it added
            # cannot make the whole batch fail to encode.
            result["message"], dropped = sanitize_fields(
                result["message"], str(result.get("arcClass")), filter_none=False
            )
            stats.add("fields_dropped", dropped)
            try:  # and what it put beside "message": checked here, so only this one goes
                jsonwire.dumps(result)
            except ValueError as exc:
                # Not the original either: the hook may have been removing a secret.
                stats.drop("before_send returned a message that is not JSON", 1)
                limited(logging.ERROR, "before_send:json", "mona_middleware: before_send "
                        "returned a message that is not JSON (%s); it is dropped", exc)  # fmt: skip
                continue
            kept.append(result)
        else:
            logger.error(
                "mona_middleware: before_send must return the message dict or None, "
                "got %s; the message is sent as it was",
                type(result).__name__,
            )
            kept.append(message)
    return kept


def global_fields(config: MonaConfig, context_class: str, stats: ExportStats) -> dict:
    """``config.global_fields`` converted once per configuration, not once per context."""
    global _global_cache
    cached = _global_cache
    if cached is None or cached[0] is not config:
        clean, _ = _clean(config.global_fields, context_class, config, stats)
        cached = _global_cache = (config, clean)  # one tuple: safe between threads
    return cached[1]


_global_cache: tuple[MonaConfig, dict] | None = None


def _with_global_fields(parts: list, shared: Mapping[str, Any]) -> list:
    """Global fields go in the OVERWRITE/NEW message (ADDing them would append copies)."""
    if parts and parts[0][0] != ADD:
        action, fields, ts = parts[0]
        return [(action, {**shared, **fields}, ts), *parts[1:]]
    return [(OVERWRITE, dict(shared), None), *parts]


def _explicit_message(
    message: ExplicitMessage, config: MonaConfig, stats: ExportStats
) -> dict[str, Any] | None:
    fields = message.fields
    if config.global_fields and message.action != ADD:
        fields = {**config.global_fields, **fields}
    clean, dropped = _clean(fields, message.context_class, config, stats)
    if not clean:
        if dropped:
            stats.drop("no valid fields", 1)
        return None
    stamp = None
    if message.timestamp is not None:
        stamp = normalize_timestamp(message.timestamp, message.context_class)
    return wire_message(message.context_class, message.context_id, clean, stamp, message.action)


def _clean(
    fields: Mapping, context_class: str, config: MonaConfig, stats: ExportStats
) -> tuple[dict, int]:
    clean, dropped = sanitize_fields(fields, context_class, filter_none=config.filter_none_fields)
    if dropped:
        stats.add("fields_dropped", dropped)
    return clean, dropped


def message_count(items: Iterable[Any]) -> int:
    """How many messages queued items stand for, without converting them (for drop counts)."""
    total = 0
    for item in items:
        if is_explicit(item):
            total += len(item)
        else:
            total += max(len(coalesce(item.ops())), 1)
    return total
