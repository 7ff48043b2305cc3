"""JSON encoding for the wire, with orjson when it is installed (``mona_middleware[fast]``).

Encoding is most of what the exporter's threads do per message once the fields are
converted: measured on a 386-byte message, 2.5 µs with the standard library and 0.3 µs
with orjson, and the GIL is held for the whole batch either way. Messages are already
JSON-ready (_export.convert.sanitize_fields): what orjson refuses (integers beyond 64 bits) falls
back to the standard library, which raises ValueError for anything not JSON.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ENCODER", "dumps", "dumps_lines"]

try:
    import orjson
except ImportError:  # the optional `fast` extra
    orjson = None

_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _stdlib(value: Any) -> bytes:
    try:
        return _encode(value).encode("utf-8")
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of JSON-ready values (see ``_export.convert.sanitize_fields``).

    ValueError for what neither encoder carries (sets, arbitrary objects, integers of
    thousands of digits). Beyond JSON-ready values the two differ (orjson writes NaN as
    null and encodes datetimes itself): callers must not rely on either.
    """
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:
            pass  # e.g. an int beyond 64 bits: the standard library carries it, or says why
    return _stdlib(value)


def dumps_lines(values: list[Any]) -> bytes:
    """One JSON document per line (JSONL), each line ending in a newline."""
    if orjson is not None:
        try:
            newline = orjson.OPT_APPEND_NEWLINE
            return b"".join(orjson.dumps(value, option=newline) for value in values)
        except TypeError:
            pass
    return b"".join(_stdlib(value) + b"\n" for value in values)


ENCODER = "orjson" if orjson is not None else "json"
