"""Turning what users export into the JSON Mona accepts, one field at a time.

Runs on the exporter's thread, never in the request. A value that JSON cannot carry is
converted where users expect it (datetimes, Decimals, numpy, ...); otherwise only that
field is dropped, with an error naming it, and the rest of the message still goes out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from .._util.log import limited
from .._util.protocol import INT_RANGE

__all__ = ["FieldError", "normalize_timestamp", "sanitize_fields"]

# Deeper than orjson goes (254): a value it refuses for its depth is still converted
# here, as the standard library encodes it, so both ways of preparing agree.
_MAX_DEPTH = 300
_SCALARS = (str, bool, type(None))  # JSON as they are (int: within INT_RANGE)
_PLAIN = frozenset(_SCALARS)
_INT_LOW, _INT_HIGH = INT_RANGE  # what orjson and most JSON backends carry exactly


class FieldError(ValueError):
    """A value JSON cannot carry; its message names the type."""


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy"


def _float(value: float) -> float:
    if math.isfinite(value):
        return value
    raise FieldError(f"{value} is not a finite number (JSON has no NaN or Infinity)")


def _convert(value: Any, depth: int) -> Any:
    """Return a JSON-ready copy of ``value`` or raise FieldError."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is int:
        return value if _INT_LOW <= value <= _INT_HIGH else _big_int(value)
    if kind is float:
        return _float(value)
    if depth > _MAX_DEPTH:
        raise FieldError(f"nested deeper than {_MAX_DEPTH} levels (a cycle?)")
    if isinstance(value, Mapping):
        return {_key(key): _convert(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_convert(item, depth + 1) for item in value]
    converter = _converter_for(value)
    if converter is None:
        raise FieldError(f"values of type {kind.__module__}.{kind.__qualname__} are not JSON")
    return converter(value, depth)


def _big_int(value: int) -> float:
    try:
        return _float(float(value))
    except OverflowError:
        raise FieldError("an integer too large for a JSON number") from None


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, (int, float, bool, enum.Enum, uuid.UUID)) or key is None:
        return str(key.value if isinstance(key, enum.Enum) else key)
    raise FieldError(f"a key of type {type(key).__name__} cannot be a JSON object key")


def _sequence(value: Any, depth: int) -> list[Any]:
    items = list(value)
    with contextlib.suppress(TypeError):  # sets of mixed types keep their iteration order
        items.sort()
    return [_convert(item, depth + 1) for item in items]


def _converter_for(value: Any) -> Callable[[Any, int], Any] | None:
    """Pick the conversion for a non-JSON value; checked in order, first match wins."""
    if isinstance(value, bool):
        return lambda v, _: bool(v)
    if isinstance(value, enum.Enum):
        return lambda v, d: _convert(v.value, d + 1)
    if isinstance(value, (int, str)):  # int/str subclasses, e.g. IntFlag
        return lambda v, d: _convert(int(v), d) if isinstance(v, int) else str(v)
    if isinstance(value, float):
        return lambda v, _: _float(float(v))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return lambda v, _: v.isoformat()
    if isinstance(value, dt.timedelta):
        return lambda v, _: v.total_seconds()
    if isinstance(value, Decimal):
        return _decimal
    if isinstance(value, (uuid.UUID, PurePath)):
        return lambda v, _: str(v)
    if isinstance(value, (set, frozenset)):
        return _sequence
    if isinstance(value, (bytes, bytearray)):
        return _bytes
    if _is_numpy(value):
        return _numpy
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return lambda v, d: _convert(dataclasses.asdict(v), d + 1)
    if callable(getattr(value, "model_dump", None)):  # pydantic v2 models (FastAPI)
        return lambda v, d: _convert(v.model_dump(mode="json"), d + 1)
    return None


def _decimal(value: Decimal, _depth: int) -> int | float:
    # adjusted() first: int(Decimal("1E+1000000")) would build a million-digit integer.
    if value.is_finite() and value.adjusted() < 19 and value == value.to_integral_value():
        return int(value)
    return _float(float(value))


def _bytes(value: bytes | bytearray, _depth: int) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError("bytes that are not UTF-8 text are not JSON") from None


def _numpy(value: Any, depth: int) -> Any:
    if hasattr(value, "tolist"):  # ndarray, and numpy scalars (whose tolist() is .item())
        return _convert(value.tolist(), depth + 1)
    raise FieldError(f"numpy values of type {type(value).__name__} are not JSON")


def sanitize_fields(
    fields: Mapping[str, Any], context_class: str, *, filter_none: bool, owned: bool = False
) -> tuple[dict[str, Any], int]:
    """Return (JSON-ready fields, number of fields dropped), logging each dropped field.

    ``owned``: ``fields`` is a dict nobody else holds, so when it is JSON-ready as it is
    it comes back itself rather than copied.

    Top-level keys starting with ``MONA_`` are reserved by Mona; they are renamed
    ``MY_MONA_...`` exactly as mona_sdk 0.0.58's ``update_mona_fields_names`` does (so
    ``MONARCH_ID`` stays ``MONARCH_ID``), instead of being lost.
    """
    if _plain(fields, filter_none):
        return (fields if owned else dict(fields)), 0  # type: ignore[return-value]  # owned: a dict
    clean: dict[str, Any] = {}
    dropped = 0
    for key, value in fields.items():
        if value is None and filter_none:
            continue
        kind = type(value)
        # Most fields are a plain string key and a JSON scalar: copied as they are.
        if (
            type(key) is str
            and not key.startswith("MONA_")
            and (
                kind in _PLAIN  # a set: one hash lookup, not three comparisons
                or (kind is float and value - value == 0)  # finite
                or (kind is int and _INT_LOW <= value <= _INT_HIGH)
            )
        ):
            clean[key] = value
            continue
        try:
            name = _key(key)
            clean["MY_" + name if name.startswith("MONA_") else name] = _convert(value, 0)
        except FieldError as exc:
            dropped += 1
            _log_dropped(context_class, key, "%s", exc)
        except Exception as exc:  # a user object whose conversion hook failed
            dropped += 1
            _log_dropped(context_class, key, "converting it raised %s", type(exc).__name__)
    return clean, dropped


def _log_dropped(context_class: str, key: object, reason: str, detail: object) -> None:
    """Log a field ``sanitize_fields`` drops (rate-limited per class and key)."""
    limited(
        logging.ERROR,
        f"field:{context_class}:{key!r}",
        "mona_middleware: dropped field %r of context class %r: " + reason,
        key,
        context_class,
        detail,
    )


def _plain(fields: Mapping[str, Any], filter_none: bool) -> bool:
    """Nearly every export: string keys without Mona's prefix, JSON scalars as values.

    The keys are checked in one C call (``join`` refuses a non-string key), then only
    the values are looked at, so the common dict is copied once instead of key by key.
    """
    if type(fields) is not dict:
        return False
    try:
        if "MONA_" in "\x00".join(fields):
            return False  # conservative: the per-key loop renames only a prefix
    except TypeError:
        return False  # a key that is not a string
    plain, low, high = _PLAIN, _INT_LOW, _INT_HIGH
    for value in fields.values():
        kind = type(value)
        if kind is float:
            if value - value:  # NaN for NaN and the infinities, else 0.0
                return False
        elif kind is int:
            if not low <= value <= high:
                return False
        elif kind not in plain or (value is None and filter_none):
            return False
    return True


def normalize_timestamp(value: Any, context_class: str) -> float | int | str:
    """Unix seconds or an ISO-8601 string, as Mona accepts; anything else becomes now."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) and value >= 0:
            return value
    elif isinstance(value, dt.datetime):
        return round(value.timestamp(), 6)
    elif isinstance(value, dt.date):
        return value.isoformat()
    elif isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return value
        except ValueError:
            pass
    limited(
        logging.ERROR,
        f"timestamp:{context_class}",
        "mona_middleware: invalid exportTimestamp %r for context class %r "
        "(expected Unix seconds or an ISO-8601 string); using the current time",
        value,
        context_class,
    )
    return round(time.time(), 3)
