"""What the batcher sends: each message's JSON, encoded once, on the batching thread.

Nearly every context is a handful of plain fields exported into one dict. For those the
message is built as it goes on the wire and encoded by orjson, which also validates it:
orjson refuses what JSON cannot carry (a set, a datetime, an int beyond 64 bits, a
non-string key: passed through to the refusal by the options below), and writes NaN and
the infinities as ``null``, which the count of ``null`` in the result gives away (the
envelope holds exactly two). Anything refused, a ``MONA_`` key, a ``None`` value or a
``before_send`` hook sends the context the general way (``prepare``), field by field,
with its conversions and the error that names the field; both ways give the same
message (a property test pins them together). Without orjson every context goes the
general way.

Encoding here, not in the sender, means what waits for a full batch is bytes: nothing
the garbage collector tracks, and a POST body that is a ``join``.
"""

from __future__ import annotations

from typing import Any

from .._util import jsonwire
from .._util.protocol import OVERWRITE
from .._util.stats import ExportStats
from ..config import MonaConfig
from .items import ClosedContext
from .prepare import default_timestamp, global_fields, messages_from

try:
    import orjson
except ImportError:  # the optional `fast` extra
    orjson = None  # type: ignore[assignment]  # None: not installed

__all__ = ["FAST", "context_wire", "encode_all"]

FAST = orjson is not None
if orjson is not None:
    _dumps = orjson.dumps
    # Refused here (then converted the general way), not encoded orjson's way.
    _STRICT = (
        orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )
_ENVELOPE_NULLS = 2  # sampleConfigName, sendTimestamp


def context_wire(ctx: ClosedContext, config: MonaConfig, stats: ExportStats) -> list[Any]:
    """The context's messages, each as its JSON (bytes) when it can be encoded so."""
    taken = ctx.take_ops()
    own = ctx.take_own()
    if FAST and len(taken) == 1 and type(taken[0]) is dict and ctx.before_send is None:
        encoded = _optimistic(ctx, taken[0], own, config, stats)
        if encoded is not None:
            return [encoded]
    return encode_all(messages_from(ctx, taken, own, config, stats))


def _optimistic(
    ctx: ClosedContext,
    fields: dict[str, Any],
    own: dict[str, Any] | None,
    config: MonaConfig,
    stats: ExportStats,
) -> bytes | None:
    """The one message of a context of plain fields, encoded; None: go the general way."""
    merged = {**fields, **own} if own else fields
    if config.global_fields and not ctx.late:
        merged = {**global_fields(config, ctx.context_class, stats), **merged}
    if not merged:
        return None
    message = {
        "message": merged,
        "contextId": ctx.context_id,
        "action": OVERWRITE,
        "sampleConfigName": None,
        "exportTimestamp": default_timestamp(ctx),
        "sendTimestamp": None,
        "arcClass": ctx.context_class,
    }
    try:
        data = _dumps(message, option=_STRICT)
        if "MONA_" in "\x00".join(merged):
            return None  # Mona's reserved prefix: renamed the general way
    except TypeError:
        return None
    if data.count(b"null") != _ENVELOPE_NULLS:
        return None  # a None (dropped with filter_none), or NaN/infinity written as null
    return data


def encode_all(messages: list[dict[str, Any]]) -> list[Any]:
    """Each message's JSON; one that cannot be encoded stays a dict, for the transport to
    refuse on its own with the reason (never its whole batch)."""
    encoded: list[Any] = []
    for message in messages:
        try:
            encoded.append(jsonwire.dumps(message))
        except ValueError:
            encoded.append(message)
    return encoded
