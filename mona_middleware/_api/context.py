"""Request contexts that follow the code wherever it runs: threads, asyncio tasks, sub-calls.

A context lives in a ``ContextVar`` so each asyncio task and each thread sees its own
(the thread-locals of mona-client did not survive asyncio). ``export()`` only records
the fields; folding, converting and sending happen on the exporter's threads after the
context closes, so the request pays for one ``dict.update`` per export.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Protocol

from .._export.items import BeforeSend
from .._runtime import process
from .._util import forks
from .._util.log import Guard, limited, refuse, safe_repr
from .._util.protocol import check_action
from ..errors import MonaError
from . import sampling
from .ids import new_context_id

if TYPE_CHECKING:
    from typing_extensions import Self  # typing's own from 3.11

__all__ = [
    "PASS_THROUGH",
    "HostState",
    "MonaContext",
    "context",
    "current_context",
    "current_var",
    "export",
    "passing_through",
    "refuse_export",
    "sample",
    "sub_context",
]

# The innermost open context of this task or thread (PASS_THROUGH: an unrecorded request).
current_var: ContextVar[MonaContext | None] = ContextVar("mona_context", default=None)
# Taken by ops other than a plain export (ADD, NEW, a key again) and by take_ops(): rare
# on the request's side, once per context on the exporter's. See MonaContext.export.
_TAKE_LOCK = threading.Lock()


@forks.after_fork_in_child
def _renew_take_lock() -> None:
    """A fork while the exporter's thread was inside take_ops() copies the lock held:
    the child's first take_ops() (or ADD export) would wait for it forever."""
    global _TAKE_LOCK
    _TAKE_LOCK = threading.Lock()


class HostState(Protocol):
    """What the core reads of a context's host (``MonaContext.request``): a web request's
    state, a websocket connection's or a Celery task's. Each adapter owns the rest of its
    own state; the core needs only these two facts."""

    @property
    def live_request(self) -> bool:
        """A live web request: with the exporter's queue full, its context waits only
        briefly for room (see ``MonaContext.in_request``)."""
        ...

    @property
    def continued(self) -> bool:
        """The caller's context, continued: ``@monitor`` inside must not rename it."""
        ...


class MonaContext:
    """One Mona context: a class, an id, and the fields exported while it is open.

    Use ``context()``/``sub_context()`` to open one; ``current_context()`` returns it.

    >>> with context("MY_MODEL", context_id="run-1") as ctx:
    ...     ctx.context_id
    'run-1'
    """

    __slots__ = (
        "_context_id",
        "_fields",
        "_ops",
        "_own",
        "_sub_id",
        "_token",
        "before_send",
        "closed",
        "context_class",
        "disabled",
        "export_timestamp",
        "late",
        "opened_at",
        "parent",
        "request",
        "sampled_out",
    )

    def __init__(
        self,
        context_class: str,
        context_id: str | None = None,
        export_timestamp: Any = None,
        *,
        parent: MonaContext | None = None,
        sub_id: str | None = None,
    ) -> None:
        self.context_class = context_class
        # A class that is no name is refused here, once: such a context is never sent
        # (the exporter would put it on the wire as it is). One type check per context.
        self.disabled = (type(context_class) is not str or not context_class) and not (
            _valid_class(context_class)
        )
        if context_id is None or type(context_id) is str:
            self._context_id = context_id
        else:
            self._context_id = _id_text(context_id)
            if self._context_id is None:  # refused (logged, counted): never sent
                self.disabled = True
        self.export_timestamp = export_timestamp
        self.opened_at = time.time()
        self.parent = parent
        self._sub_id = sub_id
        # Exports are folded as they come: OVERWRITEs without a timestamp (nearly all of
        # them) of keys not seen yet merge into ``_fields``; any other op first moves
        # ``_fields`` into ``_ops``, which keeps the order that coalesce() needs. One dict,
        # no list, for most contexts.
        self._fields: dict[str, Any] = {}
        self._ops: list[Any] | None = None
        self._own: dict[str, Any] | None = None  # what the package measured (see record)
        self._token: Token[MonaContext | None] | None = None
        self.closed = False
        self.late = False  # holds exports made after the request's context closed
        self.sampled_out = False
        # Set by adapters: the host's state (a web request's, a connection's, a task's)
        # and the user's before_send hook, applied to each wire message on the
        # exporter's thread.
        self.request: HostState | None = None
        self.before_send: BeforeSend | None = None

    def rename(self, context_class: str) -> None:
        """Change the class (``@monitor`` on a view); sampling is decided again for it.
        A class that is no name is refused (logged, counted): the name stays."""
        if type(context_class) is not str or not context_class:
            refuse_export(
                f"context_class must be a non-empty string, got {safe_repr(context_class)}"
            )
            return
        self.context_class = context_class
        config = process.config()
        if config.samples and (self.sampled_out or not self.disabled):
            keep = sampling.keep(self.context_id, sampling.rate_for(config, context_class))
            self.disabled = self.sampled_out = not keep

    @property
    def context_id(self) -> str:
        """The id, made on first use: most contexts never need one before the exporter does."""
        if self._context_id is None:
            own = new_context_id() if self._sub_id is None else str(self._sub_id)
            self._context_id = own if self.parent is None else f"{self.parent.context_id}.{own}"
        return self._context_id

    @property
    def in_request(self) -> bool:
        """Closed while a live web request is served (the exporter asks only with its
        queue full: such a context waits only briefly for room).

        Its host state (``request``: a request, a websocket connection, a Celery task)
        says whether it is a live web request (``live_request``; a state that does not
        say counts as one: a server must never stall on a guess). A context opened
        inside a view, or a late export from a thread the request started, sees the
        request's context as the current one (or an ancestor of it). Anything else (a
        task, a script, a job, even in a web process) waits for room.
        """
        state = self.request
        if state is not None and getattr(state, "live_request", True):
            return True
        ctx = current_var.get()
        for _ in range(64):  # the enclosing contexts, innermost first (a cycle cannot hang)
            if ctx is None or ctx is Token.MISSING:
                return False
            if ctx is PASS_THROUGH:
                return True
            state = ctx.request
            if state is not None and getattr(state, "live_request", True):
                return True
            token = ctx._token  # an open context: what was current when it opened
            ctx = token.old_value if token is not None else ctx.parent
        return False

    def export(
        self, message: Mapping[str, Any], action: str | None = None, export_timestamp: Any = None
    ) -> bool:
        """Record ``message``'s fields for this context; see ``mona_middleware.export``."""
        if self.disabled:
            return self.sampled_out  # left out by sampling on purpose: not a failure
        try:
            if type(message) is not dict:
                if not isinstance(message, Mapping):
                    return refuse_export(
                        f"export() takes a dict of fields, got {type(message).__name__}"
                    )
                message = dict(message)  # read once, here: a Mapping that raises fails now
            if action is None and export_timestamp is None:
                fields = self._fields
                if not self.closed and fields.keys().isdisjoint(message):
                    fields.update(message)  # the common case: no lock, one C call
                    if self.closed:  # closed by another thread meanwhile: the exporter may
                        self._export_late(dict(message))  # have taken them; an OVERWRITE
                    return True  # sent twice stores the same
                op: Any = dict(message)  # a key again: its new value may be dropped later
                # (None, NaN), so the old one must still be there: a separate op
            else:
                try:
                    op = (check_action(action), dict(message), export_timestamp)
                except ValueError as exc:
                    return refuse_export(str(exc))
        except MonaError:
            raise
        except Exception as exc:  # the fields could not be read (a hostile Mapping or key)
            return refuse_export(f"export() could not read its fields: {type(exc).__name__} raised")
        # ADD or NEW twice would not store the same: these ops and take_ops() share a
        # lock, so each op is either taken with the context or sent as a late export.
        with _TAKE_LOCK:
            if not self.closed:
                self._append(op)
                return True
        return self._export_late(op)

    def _append(self, op: Any) -> None:
        ops = self._ops
        if ops is None:
            ops = self._ops = []
        if self._fields:
            ops.append(self._fields)
            self._fields = {}
        ops.append(op)

    def _export_late(self, op: Any) -> bool:
        """A thread outlived the request: send its fields for the same context, not lose them."""
        late = MonaContext(self.context_class, self.context_id, self.export_timestamp)
        late.opened_at = self.opened_at
        late.before_send = self.before_send
        late._append(op)
        late.closed = late.late = True
        return process.enqueue(late)

    def record(self, fields: dict[str, Any]) -> None:
        """Fields the package measured itself (method, route, status, duration...).

        They are JSON-ready and applied last, as an OVERWRITE, so the exporter does not
        convert them again. The dict is taken, not copied: the caller must not reuse it.
        """
        own = self._own
        if own is None:
            self._own = fields
        else:
            own.update(fields)

    def take_own(self) -> dict[str, Any] | None:
        """The package's own fields, for the exporter (called once, after close)."""
        own, self._own = self._own, None
        return own

    def ops(self) -> list[Any]:
        """The recorded ops in order: dicts (OVERWRITE) or ``(action, fields, timestamp)``."""
        ops = [] if self._ops is None else list(self._ops)
        if self._fields:
            ops.append(self._fields)
        return ops

    def take_ops(self) -> list[Any]:
        """The recorded ops, for the exporter (called once, after close).

        A copy of the fields, not the live dict: a thread still exporting into it must
        never change what the exporter is reading (its export is resent on its own).
        """
        with _TAKE_LOCK:
            ops = [] if self._ops is None else self._ops
            fields, self._fields, self._ops = self._fields, {}, None
        if fields:
            ops.append(dict(fields))
        for index, op in enumerate(ops):
            keys = op if type(op) is dict else op[1]
            if not _STR_ONLY.issuperset(map(type, keys)):  # a key that is not plain text
                printable = printable_keys(keys, self.context_class)
                ops[index] = printable if type(op) is dict else (op[0], printable, op[2])
        return ops

    def open(self) -> Self:
        self._token = current_var.set(self)
        return self

    def leave(self) -> None:
        """Stop being the current context without closing it: a WSGI body not sent yet is
        set current again around each chunk (see ``wsgi``), never left in the thread."""
        token, self._token = self._token, None
        if token is not None:
            try:
                current_var.reset(token)
            except ValueError:  # left from another contextvars.Context (a server quirk)
                current_var.set(self.parent)

    def close(self, *_exc_info: object) -> None:
        """Leave the context and hand it to the exporter; closing twice does nothing.

        It is ``__exit__`` too (one call less per ``with`` block: a backfill closes
        hundreds of thousands of contexts).
        """
        if self._token is not None:
            try:
                current_var.reset(self._token)
            except ValueError:  # closed from another contextvars.Context (a server quirk)
                current_var.set(self.parent)
            self._token = None
        if self.closed:
            return
        self.closed = True
        if not self.disabled and (self._fields or self._ops or self._own):
            process.enqueue(self)

    def __enter__(self) -> Self:
        self._token = current_var.set(self)  # open(), without the extra call
        return self

    __exit__ = close

    async def __aenter__(self) -> Self:
        return self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MonaContext({safe_repr(self.context_class)}, context_id={self._context_id!r})"


_STR_ONLY = frozenset({str})
_OPEN = Guard("could not open a context")


def _id_text(context_id: Any) -> str | None:
    """A given context id that is not a ``str``, as text (``str()``: an int, a UUID), or
    None when it cannot be (its ``__str__`` raises or returns no text): refused."""
    try:
        text = str(context_id)
        if type(text) is str:
            return text
        reason = "its str() is not text"
    except Exception as exc:
        reason = f"str() raised {type(exc).__name__}"
    refuse_export(f"context_id of type {type(context_id).__name__} cannot be an id ({reason})")
    return None


def printable_keys(fields: dict[Any, Any], context_class: Any) -> dict[Any, Any]:
    """``fields`` without the keys whose ``repr()`` raises, each logged and counted as a
    dropped field: the exporter names a field it cannot send by its repr, and one such
    key must cost that field, not the whole context. Off the request's path (the
    exporter's thread), for the rare dict with a key that is not a ``str``."""
    kept: dict[Any, Any] = {}
    for key, value in fields.items():
        if type(key) is not str:
            try:
                repr(key)
            except Exception as exc:
                process.count("fields_dropped")
                limited(
                    logging.ERROR,
                    f"field:unprintable:{type(key).__qualname__}",
                    "mona_middleware: dropped a field of context class %s: its key, of type "
                    "%s, cannot be printed (repr() raised %s)",
                    safe_repr(context_class),
                    type(key).__qualname__,
                    type(exc).__name__,
                )
                continue
        kept[key] = value
    return kept


# The current context of a request a middleware lets through unrecorded (an excluded
# URL, the kill switch): ``export()`` returns False quietly, ``@monitor`` and
# ``sub_context`` record nothing, ``current_context()`` says None. Never opened or sent.
PASS_THROUGH = MonaContext("PASS_THROUGH", "-")
PASS_THROUGH.disabled = True


@contextlib.contextmanager
def passing_through() -> Iterator[None]:
    """Run a request a middleware lets through unrecorded, whatever context it inherited."""
    token = current_var.set(PASS_THROUGH)
    try:
        yield
    finally:
        current_var.reset(token)


def refuse_export(reason: str, raising: bool | None = None) -> bool:
    """``refuse`` a call of the API: counted in ``exports_refused``, raised as
    ``MonaExportError`` when ``raising`` (by default ``raise_export_exceptions``), else
    logged; False."""
    if raising is None:
        raising = process.config().raise_export_exceptions
    return refuse(reason, raising=raising, count=process.count_refused)


def context(
    context_class: str, *, context_id: str | None = None, export_timestamp: Any = None
) -> MonaContext:
    """Open a new context (``with`` or ``async with``); exports inside go to it.

    A value that cannot work (a class that is no name, an id that is no text) is logged
    and counted, and the context is not recorded: the code inside still runs.

    >>> with context("FRAUD_MODEL", context_id="txn-42"):
    ...     export({"score": 0.93})
    True
    """
    try:
        ctx = MonaContext(context_class, context_id, export_timestamp)
        _check_new(ctx)
        return ctx
    except Exception as exc:
        return _unrecorded(exc)


def sub_context(context_class: str, *, sub_id: str | None = None) -> MonaContext:
    """Open a context nested in the current one; its id is ``<parent id>.<sub_id>``.

    Outside any context it opens a top-level one (with a warning), as the sub-component
    usually also runs on its own.
    """
    try:
        parent = current_var.get()
        refused = False
        if sub_id is not None and type(sub_id) is not str:
            sub_id = _id_text(sub_id)
            refused = sub_id is None
        if parent is PASS_THROUGH or refused:  # an excluded request's parts, or an id
            ctx = MonaContext(context_class, sub_id=sub_id)  # refused: not recorded
            ctx.disabled = True
            return ctx
        if parent is None:
            limited(
                logging.WARNING,
                "sub_context:no_parent",
                "mona_middleware: sub_context(%s) outside any context opens a top-level one",
                safe_repr(context_class),
            )
        ctx = MonaContext(context_class, parent=parent, sub_id=sub_id)
        if parent is None and sub_id is not None:
            ctx._context_id = sub_id
        _check_new(ctx)
        return ctx
    except Exception as exc:
        return _unrecorded(exc)


def _unrecorded(exc: Exception) -> MonaContext:
    """A context that records nothing, for a ``with`` block that must still run."""
    _OPEN.caught(exc)  # a MonaError (raise_export_exceptions) is raised again
    ctx = MonaContext("UNRECORDED", "-")
    ctx.disabled = True
    return ctx


def _check_new(ctx: MonaContext) -> None:
    """Decide once, at open: switched off, invalid (refused already), sampled out, or
    recorded."""
    config = process.config()
    if process.switched_off(config):
        ctx.disabled = True
    elif not ctx.disabled and config.samples:
        sample(ctx, config)


def _valid_class(context_class: Any) -> bool:
    """A class given as a ``str`` subclass is one; anything else (not text, empty) is
    refused: counted, logged, raised with ``raise_export_exceptions``."""
    if isinstance(context_class, str) and str.__len__(context_class):
        return True
    return refuse(
        f"context_class must be a non-empty string, got {safe_repr(context_class)}",
        raising=process.config().raise_export_exceptions,
        count=process.count_refused,
        key="context_class",
        line="mona_middleware: context not recorded: %s",
    )


def sample(ctx: MonaContext, config: Any) -> None:
    """Sampling's one decision for a context, by its id (mona_sdk's rule)."""
    if config.samples:
        rate = sampling.rate_for(config, ctx.context_class)
        if not sampling.keep(ctx.context_id, rate):
            ctx.disabled = ctx.sampled_out = True
            process.count_sampled_out()


def current_context() -> MonaContext | None:
    """The innermost open context of this task or thread, or None."""
    ctx = current_var.get()
    return None if ctx is PASS_THROUGH else ctx


def export(
    message: Mapping[str, Any], *, action: str | None = None, export_timestamp: Any = None
) -> bool:
    """Add fields to the current context; returns False (never raises by default) when refused.

    ``action`` is Mona's: ``OVERWRITE`` (default, later values win), ``ADD`` (append to a
    list) or ``NEW`` (forget what was exported before in this context).

    >>> with context("MY_MODEL"):
    ...     export({"score": 0.5, "model": "v3"})
    True
    """
    ctx = current_var.get()
    if ctx is None:
        return process.export_outside_context()
    if action is None and export_timestamp is None and type(message) is dict:
        # MonaContext.export's common case inlined: one Python call less per export.
        fields = ctx._fields
        try:  # free until it raises: a key whose __eq__ raises on a hash collision
            if not (ctx.disabled or ctx.closed) and fields.keys().isdisjoint(message):
                fields.update(message)
                if ctx.closed:  # closed by another thread meanwhile: see MonaContext.export
                    ctx._export_late(dict(message))
                return True
        except Exception as exc:
            return refuse_export(f"export() could not read its fields: {type(exc).__name__} raised")
    return ctx.export(message, action, export_timestamp)
