"""mona-client 0.2's module API on this package's contexts: change the import, nothing else.

    # from mona_client import client
    from mona_middleware.compat import mona_client as client

    with client.new_mona_context(arc_class="MY_MODEL", context_id=row.id) as context_id:
        client.export({"score": 0.9})

Each ``new_mona_context`` / ``init`` opens one of this package's contexts (class
``arc_class``, id ``context_id``), each sub-context one nested in it (id
``<context id>.<sub id>``); ``export`` records into the innermost. A context is queued
when it closes (the ``with`` ends, or ``reset``/``init``/``close_sub_context``/``close``
close it) and the exporter sends it over Mona's REST protocol, not mona-client's fluentd.

What changes: fields starting with ``MONA_`` are kept, renamed ``MY_MONA_...`` as
mona_sdk does (mona-client discarded them; each is logged once); ``init_client``'s host,
port and queue arguments do not apply (logged once, naming each); calls never raise
unless ``MONA_SHOULD_RAISE_EXCEPTIONS=true`` (mona-client's default was to raise).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._api.batch import queue_batch
from .._api.context import MonaContext, context, current_context, sub_context
from .._api.ids import new_context_id
from .._runtime import process
from .._util.log import logger, refuse
from ..config import NOT_APPLYING
from ..errors import MonaExportError
from .mona_thread import MonaThread

__all__ = [
    "CONTEXT_SEPARATOR",
    "DEFAULT_ARC_CLASS",
    "MonaBatchMissingKeyException",
    "MonaExportException",
    "MonaThread",
    "close",
    "close_sub_context",
    "export",
    "export_batch",
    "get_full_context_id",
    "init",
    "init_client",
    "init_sub_context",
    "new_mona_context",
    "new_mona_sub_context",
    "reset",
    "set_global_init_message",
]

CONTEXT_SEPARATOR = "."
# The class of a context opened without ``arc_class`` (Mona's REST API needs one).
DEFAULT_ARC_CLASS = "MONA_CLIENT_CONTEXT"


class MonaExportException(MonaExportError):
    """mona-client's name: an export refused while ``MONA_SHOULD_RAISE_EXCEPTIONS`` is on."""


class MonaBatchMissingKeyException(MonaExportError):
    """mona-client's name: an ``export_batch`` event without its ``message``."""


@dataclass(frozen=True)
class _Level:
    """One ``init``/``init_sub_context``: our context and the id pieces it added."""

    ctx: MonaContext
    pieces: tuple[str, ...]
    protected: bool = False  # opened by a ``with``: only the ``with`` closes it


# This thread's (or task's) open levels, outermost first; a tuple, replaced on change, so
# a thread started with a copy of the contextvars (MonaThread) never changes the parent's.
_levels: contextvars.ContextVar[tuple[_Level, ...]] = contextvars.ContextVar(
    "mona_client_levels", default=()
)
_global_message: dict[str, Any] = {}
_warned: set[str] = set()
_open_lock = threading.Lock()
_open: set[MonaContext] = set()  # contexts opened by init(): closed at exit if still open
_exit_hook = False


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning("mona_middleware: " + message, *args)


def _raising() -> bool:
    return bool(process.config().raise_export_exceptions)


def _error(message: str) -> None:
    """mona-client's failures: logged, raised only when the user asked for it."""
    refuse(message, raising=_raising(), error=MonaExportException, line="mona_middleware: %s")


# -- setup


_INIT_ARGUMENTS = {
    "mona_host": "MONA_HOST",
    "mona_port": "MONA_PORT",
    "queue_maxsize": "MONA_QUEUE_SIZE",
    "queue_circular": "MONA_QUEUE_CIRCULAR",
    "blocking": "MONA_BLOCKING",
}
_inited = False


def init_client(
    mona_host: Any = None,
    mona_port: Any = None,
    user_id: str | None = None,
    queue_maxsize: Any = None,
    queue_circular: Any = None,
    blocking: Any = None,
) -> None:
    """mona-client's set-up: optional here (the exporter starts on first use).

    ``user_id`` is the Mona user id (as ``MONA_USER_ID``). The fluentd host and port and
    the queue arguments no longer apply: each one given is logged once, with what to
    set instead. A second call does nothing, as in mona-client.
    """
    global _inited
    if _inited:
        logger.warning("mona_middleware: Tried initing an already inited client. Doing nothing.")
        return
    _inited = True
    given = {
        "mona_host": mona_host,
        "mona_port": mona_port,
        "queue_maxsize": queue_maxsize,
        "queue_circular": queue_circular,
        "blocking": blocking,
    }
    for name, value in given.items():
        if value is not None:
            why = NOT_APPLYING[_INIT_ARGUMENTS[name]]
            _warn_once(f"init:{name}", "init_client(%s=...) does not apply: %s", name, why)
    if user_id and user_id != process.config().user_id:
        process.configure(user_id=user_id)


def set_global_init_message(message: Mapping[str, Any]) -> None:
    """Fields exported into every main context opened from now on (its environment...)."""
    if not isinstance(message, Mapping):
        _error(f"set_global_init_message() takes a dict, got {type(message).__name__}")
        return
    _global_message.clear()
    _global_message.update(message)


# -- contexts


def get_full_context_id() -> str:
    """The full id of the innermost open context (``main.sub...``), '' outside any.

    Inside one of this package's own contexts (a request a middleware records), its id.
    """
    levels = _levels.get()
    if levels:
        return levels[-1].ctx.context_id
    ctx = current_context()
    return "" if ctx is None else ctx.context_id


def _switched_off() -> bool:
    return process.switched_off()


def _close_from(index: int) -> None:
    """Close the levels from ``index`` on, innermost first, and forget them."""
    levels = _levels.get()
    for level in reversed(levels[index:]):
        level.ctx.close()
        with _open_lock:
            _open.discard(level.ctx)
    _levels.set(levels[:index])


def _protected() -> bool:
    return any(level.protected for level in _levels.get())


def reset() -> None:
    """Close every context of this thread (each is queued for export)."""
    if _switched_off():
        return
    _close_from(0)


def init(
    arc_class: str | None = None,
    context_id: str = "",
    export_timestamp: Any = None,
    *,
    ARC_class: str | None = None,
) -> str:
    """Open a main context (closing this thread's others); its full id.

    Inside a ``with new_mona_context`` it keeps that context (logged), as mona-client did.
    ``context_id`` may hold sub-context ids (``"main.sub"``); empty means a new id.
    """
    if _switched_off():
        return ""
    if _protected():
        logger.error(
            "mona_middleware: Tried to init inside a context manager. Keeping same context."
        )
        return get_full_context_id()
    return _open_main(arc_class or ARC_class, context_id, export_timestamp, protected=False)


def _open_main(arc_class: Any, context_id: Any, export_timestamp: Any, protected: bool) -> str:
    _close_from(0)
    if arc_class is None:
        _warn_once(
            "no_arc_class",
            "a mona-client context without arc_class is sent with class %r; pass arc_class",
            DEFAULT_ARC_CLASS,
        )
        arc_class = DEFAULT_ARC_CLASS
    full_id = str(context_id) if context_id else new_context_id()
    ctx = context(arc_class, context_id=full_id, export_timestamp=export_timestamp).open()
    _levels.set((_Level(ctx, tuple(full_id.split(CONTEXT_SEPARATOR)), protected),))
    if not protected:
        _remember(ctx)
    if _global_message:
        _record(ctx, dict(_global_message), None)
    return full_id


def _remember(ctx: MonaContext) -> None:
    """A context only ``reset``/``close`` would close: closed and sent at exit otherwise."""
    global _exit_hook
    with _open_lock:
        _open.add(ctx)
        if not _exit_hook:
            _exit_hook = True
            atexit.register(_close_at_exit)  # after the exporter's hook: runs before it


def _close_at_exit() -> None:
    with _open_lock:
        pending = list(_open)
        _open.clear()
    for ctx in pending:
        ctx.close()
    if pending:
        process.shutdown()


def init_sub_context(
    arc_class: str | None = None,
    sub_context_id: str = "",
    *,
    ARC_class: str | None = None,
) -> str:
    """Open a sub-context in the current one; its own id (not the full one), or ''."""
    if _switched_off():
        return ""
    return _open_sub(arc_class or ARC_class, sub_context_id, protected=False)


def _open_sub(arc_class: Any, sub_context_id: Any, protected: bool) -> str:
    levels = _levels.get()
    if not levels:
        logger.error("mona_middleware: Tried to create subcontext before init")
        return ""
    sub_id = str(sub_context_id) if sub_context_id else new_context_id()
    parent = levels[-1].ctx
    ctx = sub_context(arc_class or parent.context_class, sub_id=sub_id).open()
    if not protected:
        _remember(ctx)
    pieces = tuple(sub_id.split(CONTEXT_SEPARATOR))
    _levels.set((*levels, _Level(ctx, pieces, protected)))
    return sub_id


def close_sub_context(sub_context_id: str = "") -> str:
    """Close the given sub-context (the innermost when '') and those inside it; the full
    id left open. Not open, the main context, or a ``with``'s: logged, nothing closed."""
    if _switched_off():
        return ""
    levels = _levels.get()
    pieces = [piece for level in levels for piece in level.pieces]
    if sub_context_id:
        if sub_context_id not in pieces:
            logger.error(
                "mona_middleware: Tried to close sub context %r, which is not open", sub_context_id
            )
            return get_full_context_id()
        piece_index = pieces.index(sub_context_id)
    else:
        piece_index = len(pieces) - 1
    if piece_index < 1:
        logger.error("mona_middleware: Tried to close non-existing subcontext")
        return get_full_context_id()
    index, start = 0, 0  # the level holding that piece
    while start + len(levels[index].pieces) <= piece_index:
        start += len(levels[index].pieces)
        index += 1
    if any(level.protected for level in levels[index:]) or index == 0:
        logger.warning(
            "mona_middleware: Tried to close sub context from within its own context manager; "
            "the 'with' statement closes it"
        )
        return get_full_context_id()
    _close_from(index)
    return get_full_context_id()


@contextlib.contextmanager
def new_mona_context(
    arc_class: str | None = None,
    context_id: str = "",
    export_timestamp: Any = None,
    *,
    ARC_class: str | None = None,
) -> Iterator[str]:
    """A main context for the ``with`` block; yields its full id ('' when switched off)."""
    if _switched_off():
        yield ""
        return
    if _protected():
        logger.error(
            "mona_middleware: Tried to init inside a context manager. Keeping same context."
        )
        yield get_full_context_id()
        return
    full_id = _open_main(arc_class or ARC_class, context_id, export_timestamp, protected=True)
    try:
        yield full_id
    finally:
        _close_from(0)


@contextlib.contextmanager
def new_mona_sub_context(
    arc_class: str | None = None,
    sub_context_id: str = "",
    *,
    ARC_class: str | None = None,
) -> Iterator[str]:
    """A sub-context of the current context for the ``with`` block; yields its own id."""
    if _switched_off():
        yield ""
        return
    depth = len(_levels.get())
    sub_id = _open_sub(arc_class or ARC_class, sub_context_id, protected=True)
    if not sub_id:
        yield ""
        return
    try:
        yield sub_id
    finally:
        if len(_levels.get()) > depth:
            _close_from(depth)


# -- exporting


def _record(ctx: MonaContext, message: dict[str, Any], export_timestamp: Any) -> bool:
    for key in message:
        if isinstance(key, str) and key.startswith("MONA_"):
            _warn_once(
                f"field:{key}",
                "field %r is sent as %r (mona-client dropped MONA_ fields, mona_sdk renames them)",
                key,
                "MY_" + key,
            )
    try:
        return ctx.export(message, export_timestamp=export_timestamp)
    except MonaExportException:
        raise
    except MonaExportError as exc:
        raise MonaExportException(str(exc)) from None


def export(message: Mapping[str, Any], export_timestamp: Any = None) -> bool | None:
    """Record ``message`` in the current context; True when recorded.

    Outside any context, or not a dict: logged (or ``MonaExportException`` with
    ``MONA_SHOULD_RAISE_EXCEPTIONS=true``). A bad ``export_timestamp`` is logged and
    replaced by the current time, as mona-client did.
    """
    if _switched_off():
        return None
    if not isinstance(message, Mapping):
        _error(f"Tried to send non-dict message to mona: export() got {type(message).__name__}")
        return False
    levels = _levels.get()
    if not levels:
        ctx = current_context()  # inside one of this package's own contexts: it counts
        if ctx is None:
            _error("Tried to export out of context")
            return False
    else:
        ctx = levels[-1].ctx
    return _record(ctx, dict(message), export_timestamp)


def export_batch(events: Iterable[Mapping[str, Any]]) -> None:
    """mona-client's batch: ``{arc_class, context_id, export_timestamp, message}`` dicts,
    each its own main context (with the global init message). One without ``message``
    is skipped, logged with its index (or ``MonaBatchMissingKeyException`` when raising).
    """
    if _switched_off():
        return
    try:
        items = list(events)
    except TypeError:
        _error(f"export_batch() takes an iterable of events, got {type(events).__name__}")
        return
    messages = []
    for index, event in enumerate(items):
        if not isinstance(event, Mapping) or "message" not in event:
            refuse(
                "message",  # mona-client's exception names the missing key
                raising=_raising(),
                error=MonaBatchMissingKeyException,
                key=f"refused:no message:{index}",
                line="mona_middleware: export_batch event %d has no 'message'; skipped",
                args=(index,),
            )
            continue
        fields = event["message"]
        if isinstance(fields, Mapping):
            fields = {**_global_message, **fields}
        messages.append(
            {
                "message": fields,
                "contextClass": event.get("arc_class") or DEFAULT_ARC_CLASS,
                "contextId": event.get("context_id") or new_context_id(),
                "exportTimestamp": event.get("export_timestamp"),
            }
        )
    try:
        queue_batch(messages)
    except MonaExportError as exc:
        raise MonaExportException(str(exc)) from None


def close() -> None:
    """Close this thread's contexts and wait for what was queued to be delivered."""
    _close_from(0)
    process.flush()
