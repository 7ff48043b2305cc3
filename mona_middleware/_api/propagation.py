"""One context across services: its class and id travel as W3C ``baggage`` entries.

Baggage, not a header of our own, so a service in between that only runs OpenTelemetry
(whose default propagators carry ``baggage``) passes the context on untouched. Our two
entries are merged into the baggage a call already carries; any other entry is kept
as it was sent (https://www.w3.org/TR/baggage/).

Incoming values come from whoever calls the service, so they are parsed strictly: a
malformed header or an id or class that could not be Mona's is ignored (the request gets
its own context), counted in ``stats()["incoming_contexts_ignored"]`` and logged by
reason, never by value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn
from urllib.parse import quote, unquote_to_bytes

from .._runtime import process
from .._util.log import Guard, limited
from .context import current_var

__all__ = [
    "BAGGAGE",
    "CLASS_KEY",
    "ID_KEY",
    "MAX_ID_LENGTH",
    "header_context_id",
    "incoming_context",
    "merge_baggage",
    "outgoing_headers",
    "parse_baggage",
]

BAGGAGE = "baggage"
CLASS_KEY = "mona.context_class"
ID_KEY = "mona.context_id"
MAX_ID_LENGTH = 256  # what context_id_header has always accepted
MAX_CLASS_LENGTH = 100
# W3C baggage's limits: a sender must not exceed them, so a longer header is malformed.
MAX_BAGGAGE_BYTES = 8192
MAX_ENTRIES = 180

_OUTGOING = Guard("could not read the call's headers for outgoing_headers()")

# RFC 7230 token characters: what a baggage key may be made of.
_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A whole member, spaces around its parts allowed: key, raw value, properties. A value
# as sent is baggage-octets (printable ASCII but space, '"', ',', ';', '\') and escapes.
_MEMBER = re.compile(
    r"[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*=[ \t]*"
    r"([\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*)[ \t]*(;[^,]*)?"
)
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# What an id may hold once decoded: ids are ASCII for mona_sdk, and no control
# character, space or separator a log line or a query could trip on.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/~-]*")
_CLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Characters percent-encoded in our values: all but unreserved ones and a few safe ones.
_SAFE = "._:@+=/~-"
_PLAIN = re.compile(r"[A-Za-z0-9._:@+=/~-]*")


class BadBaggage(ValueError):
    """An incoming baggage header or Mona entry that is ignored; the message is the reason."""


def parse_baggage(header: str) -> list[tuple[str, str, str]]:
    """The entries of a ``baggage`` header: ``(key, decoded value, properties)``.

    Raises ``BadBaggage`` naming what is wrong, as the W3C format defines it.

    >>> parse_baggage("userId=alice, mona.context_id=r%2F1;p=1")
    [('userId', 'alice', ''), ('mona.context_id', 'r/1', ';p=1')]
    """
    size = len(header) if header.isascii() else len(header.encode("utf-8", "surrogatepass"))
    if size > MAX_BAGGAGE_BYTES:
        raise BadBaggage(f"baggage header longer than {MAX_BAGGAGE_BYTES} bytes")
    members = header.split(",")
    if len(members) > MAX_ENTRIES:
        raise BadBaggage(f"more than {MAX_ENTRIES} baggage members")
    if len(members) == 1 and not header.strip(" \t"):
        return []
    entries = []
    for member in members:
        match = _MEMBER.fullmatch(member)
        if match is None:
            _diagnose(member)
        key, raw, properties = match.groups()
        if "%" in raw:
            if _BROKEN_ESCAPE.search(raw):
                raise BadBaggage("baggage value has a broken percent escape")
            try:
                raw = unquote_to_bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                raise BadBaggage("baggage value is not UTF-8 once decoded") from None
        entries.append((key, raw, properties or ""))
    return entries


def _diagnose(member: str) -> NoReturn:
    """Why ``member`` is not a baggage member (the slow path: it is one almost always)."""
    member = member.strip(" \t")
    if not member:
        raise BadBaggage("empty baggage member")
    key, equals, _ = member.partition(";")[0].partition("=")
    if not equals:
        raise BadBaggage("baggage member without '='")
    if not _KEY.fullmatch(key.strip(" \t")):
        raise BadBaggage("baggage key is not a token")
    raise BadBaggage("baggage value holds a character baggage does not allow")


def _check_context(context_class: str | None, context_id: str | None) -> tuple[str, str]:
    if context_class is None or context_id is None:
        missing = "mona.context_class" if context_class is None else "mona.context_id"
        raise BadBaggage(f"{missing} missing")
    problem = id_problem(context_id)
    if problem is not None:
        raise BadBaggage(f"mona.context_id {problem}")
    if not context_class:
        raise BadBaggage("mona.context_class is empty")
    if len(context_class) > MAX_CLASS_LENGTH:
        raise BadBaggage(f"mona.context_class longer than {MAX_CLASS_LENGTH} characters")
    if not _CLASS.fullmatch(context_class):
        raise BadBaggage("mona.context_class is not a name (letters, digits, '_')")
    return context_class, context_id


def read_context(header: str) -> tuple[str, str] | None:
    """The ``(class, id)`` a ``baggage`` header carries, None when it carries none.

    Raises ``BadBaggage`` for a malformed header or a Mona entry that is not valid.
    """
    if "mona." not in header:  # most calls: other baggage only, not parsed at all
        return None
    found: dict[str, str] = {}
    for key, value, _ in parse_baggage(header):
        if key in (CLASS_KEY, ID_KEY):
            if key in found and found[key] != value:
                raise BadBaggage(f"{key} given twice with different values")
            found[key] = value
    if not found:
        return None
    return _check_context(found.get(CLASS_KEY), found.get(ID_KEY))


def incoming_context(header: str | None) -> tuple[str, str] | None:
    """The context a request's ``baggage`` asks to continue, or None (counted when bad)."""
    if not header:
        return None
    try:
        return read_context(header)
    except BadBaggage as exc:
        reason = str(exc)
    except Exception:  # whatever the header held, the request goes on
        reason = "unreadable baggage header"
    process.count("incoming_contexts_ignored")
    limited(
        logging.WARNING,
        f"incoming:{reason}",
        "mona_middleware: incoming context ignored (%s); the request gets its own context",
        reason,
    )
    return None


def id_problem(context_id: str) -> str | None:
    """Why ``context_id`` could not be a Mona context id from a caller, or None if it can:
    the one rule for incoming ids (baggage, ``context_id_header``)."""
    if not context_id:
        return "is empty"
    if len(context_id) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    if _ID.fullmatch(context_id):
        return None
    if _CONTROL.search(context_id):
        return "holds a control character"
    return "holds characters an id may not have"


def header_context_id(value: object) -> str | None:
    """The id a request's ``context_id_header`` gives, if it is one an id may be; else None.

    It comes from whoever calls the service, so it passes the rule incoming baggage ids
    pass: a bad one (a control character, ESC, a newline, too long...) is ignored (the
    request gets a new id), counted in ``stats()["context_id_headers_ignored"]`` and
    logged by reason, never by value. No header (or an empty one) is no id, not counted.
    """
    if not value:
        return None
    if type(value) is str and len(value) <= MAX_ID_LENGTH and _ID.fullmatch(value):
        return value  # nearly always: one C call
    reason = id_problem(value) if isinstance(value, str) else "not text"
    process.count("context_id_headers_ignored")
    limited(
        logging.WARNING,
        f"context_id_header:{reason}",
        "mona_middleware: context_id_header value ignored (%s); the request gets a new id",
        reason,
    )
    return None


def merge_baggage(existing: str | None, context_class: str, context_id: str) -> str:
    """``existing`` baggage with our two entries set: every other member kept verbatim.

    An earlier ``mona.*`` entry (the context this service was called with) is replaced;
    a header we cannot parse is left as it is and ours are appended.

    >>> merge_baggage("userId=alice,mona.context_id=old", "MODEL", "r-1")
    'userId=alice,mona.context_class=MODEL,mona.context_id=r-1'
    """
    ours = (
        f"{CLASS_KEY}={quote(context_class, safe=_SAFE)},{ID_KEY}={quote(context_id, safe=_SAFE)}"
    )
    if not existing or not existing.strip(" \t,"):
        return ours
    kept = []
    for member in existing.split(","):
        key = member.partition(";")[0].partition("=")[0].strip(" \t")
        if key not in (CLASS_KEY, ID_KEY) and member.strip(" \t"):
            kept.append(member.strip(" \t"))
    return ",".join([*kept, ours])


def _encode(value: str) -> str:
    """Percent-encode a value for baggage; ids and names almost never need it."""
    return value if _PLAIN.fullmatch(value) else quote(value, safe=_SAFE)


def outgoing_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
) -> dict[str, str]:
    """The headers that carry the current context to the next service; ``{}`` outside one.

    Pass the call's own ``headers`` (a mapping, or a list of ``(name, value)`` pairs as
    ``requests`` and ``httpx`` also take) to keep the baggage they already carry: the
    result is then that baggage with the context's entries added. Never raises: headers
    that cannot be read give ``{}`` (the call goes out as it is), logged.

    >>> from mona_middleware import context
    >>> with context("MODEL", context_id="r-1"):
    ...     outgoing_headers({"baggage": "userId=alice"})
    {'baggage': 'userId=alice,mona.context_class=MODEL,mona.context_id=r-1'}
    >>> outgoing_headers()
    {}
    """
    ctx = current_var.get()
    if ctx is None or (ctx.disabled and not ctx.sampled_out):  # sampled out: still sent,
        return {}  # so every service agrees; PASS_THROUGH and invalid ones: nothing
    try:
        existing = _baggage_in(headers) if headers else None
        context_class, context_id = ctx.context_class, ctx.context_id
        if type(context_class) is not str or type(context_id) is not str:
            return {}  # a context that is never sent either (see context())
        return {BAGGAGE: merge_baggage(existing, context_class, context_id)}
    except Exception as exc:
        _OUTGOING.caught(exc)
        return {}


def _baggage_in(headers: Any) -> str | None:
    """The baggage a call's headers carry, if any: a mapping's (its own ``get`` first, for
    case-insensitive ones), or every ``baggage`` pair of a list, joined as W3C allows."""
    if isinstance(headers, Mapping):
        existing = headers.get(BAGGAGE)
        if existing is None:
            for name, value in headers.items():
                if _is_baggage(name):
                    existing = value
                    break
        return _text(existing)
    if isinstance(headers, (str, bytes)):
        raise TypeError(f"headers must be a mapping or pairs, not {type(headers).__name__}")
    values = [_text(value) for name, value in headers if _is_baggage(name)]
    found = [value for value in values if value]
    return ",".join(found) if found else None


def _is_baggage(name: Any) -> bool:
    if isinstance(name, bytes):  # raw ASGI headers
        name = name.decode("latin-1")
    return isinstance(name, str) and name.lower() == BAGGAGE


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None
