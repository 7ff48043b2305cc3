"""``@monitor``: put a view, or any function, under a context class.

On a view inside a monitored request it names that request's context class (and adds
static fields); anywhere else (a batch job, a Celery task body) each call opens its own
context with the call's duration and exception type.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from .._runtime import process
from .._util.log import Guard, limited
from .context import PASS_THROUGH, MonaContext, context, current_var

__all__ = ["monitor"]

_ENTER = Guard("@monitor could not open a context")
_EXIT = Guard("@monitor could not close its context")
_FLUSH = Guard("@monitor(flush=True) could not flush")

F = TypeVar("F", bound=Callable[..., Any])


# What type checkers see: ``@monitor`` (bare) and ``@monitor(...)`` both give back the
# function's own type, its signature kept.
@overload
def monitor(context_class: F, /) -> F: ...


@overload
def monitor(
    context_class: str | None = None,
    *,
    fields: Mapping[str, Any] | None = None,
    flush: bool = False,
) -> Callable[[F], F]: ...


def monitor(
    context_class: str | Callable[..., Any] | None = None,
    *,
    fields: Mapping[str, Any] | None = None,
    flush: bool = False,
) -> Any:
    """Decorate a sync or async function; keeps its signature (``functools.wraps``, plus
    ``__signature__`` when its annotations are strings, see ``_keep_signature``).

    ``flush=True`` (serverless handlers: AWS Lambda freezes the process once it returns)
    delivers the call's context before the function returns, waiting at most
    ``shutdown_timeout``; an async function waits off the event loop. Inside a web
    request the request's context closes later: use the adapter's ``flush_after_request``.

    >>> @monitor("NIGHTLY_JOB", fields={"team": "ml"})
    ... def nightly():
    ...     export({"rows": 10})
    """
    if callable(context_class):  # used bare: @monitor
        return monitor()(context_class)

    def decorate(fn: F) -> F:
        scope = _Scope(context_class, _name_of(fn), _static_fields(fields))
        if inspect.iscoroutinefunction(fn):
            return _keep_signature(_async_wrapper(fn, scope, flush), fn)
        return _keep_signature(_sync_wrapper(fn, scope, flush), fn)

    return decorate


def _sync_wrapper(fn: Callable[..., Any], scope: _Scope, flush: bool) -> Callable[..., Any]:
    """``@monitor``'s wrapper of a plain function: one context per call."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        opened = scope.enter()
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            scope.failed(opened, exc)
            raise
        finally:
            scope.exit(opened)
            if flush and opened is not None:
                _flush()

    return run


def _async_wrapper(fn: Callable[..., Any], scope: _Scope, flush: bool) -> Callable[..., Any]:
    """``@monitor``'s wrapper of a coroutine function: one context per call, flushed off
    the event loop."""

    @functools.wraps(fn)
    async def run_async(*args: Any, **kwargs: Any) -> Any:
        opened = scope.enter()
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            scope.failed(opened, exc)
            raise
        finally:
            scope.exit(opened)
            if flush and opened is not None:
                await _flush_async()

    return run_async


def _name_of(fn: Any) -> str:
    """The default class: the function's name in capitals (``FUNCTION`` for a callable
    without one, an object whose ``__name__`` is no text)."""
    name = getattr(fn, "__name__", None)
    return name.upper() if isinstance(name, str) and name else "FUNCTION"


def _static_fields(fields: Any) -> dict[str, Any]:
    """``fields`` copied once, at decoration; ones that cannot be read are left out, logged:
    the function itself must still run."""
    try:
        return dict(fields) if fields else {}
    except Exception as exc:
        limited(
            logging.ERROR,
            "monitor:fields",
            "mona_middleware: @monitor(fields=...) could not be read (%s raised); "
            "the function is monitored without them",
            type(exc).__name__,
        )
        return {}


def _flush() -> None:
    """``flush=True``: the context just closed is delivered, within ``shutdown_timeout``."""
    with _FLUSH:
        process.flush(process.config().shutdown_timeout)


async def _flush_async() -> None:
    """The same from a coroutine, in a worker thread: the event loop keeps running."""
    with _FLUSH:
        await asyncio.get_running_loop().run_in_executor(None, _flush)


def _keep_signature(wrapper: Callable[..., Any], fn: F) -> F:
    """Give ``wrapper`` ``fn``'s signature with string annotations evaluated in *fn's* globals.

    Under ``from __future__ import annotations`` annotations are strings, and FastAPI
    < 0.123.5 evaluates them in ``wrapper.__globals__`` (this module's), which turns
    ``BackgroundTasks`` and ``Depends`` parameters into query parameters. ``inspect.signature``
    returns ``__signature__`` instead of following ``__wrapped__``. It is set only when there
    are strings and they evaluate (a forward reference or a ``TYPE_CHECKING`` import fails),
    so everything else resolves exactly as before; this never raises. The check first keeps
    Django's ``method_decorator``, which decorates on every call, at about a microsecond.
    """
    with contextlib.suppress(Exception):
        annotations = getattr(inspect.unwrap(fn), "__annotations__", None) or {}
        if any(isinstance(a, str) for a in annotations.values()):
            wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class _Scope:
    """What one decorated function does around each call; never raises into it."""

    def __init__(self, explicit: str | None, default: str, fields: dict[str, Any]) -> None:
        self.explicit = explicit
        self.default = default
        self.fields = fields

    def enter(self) -> tuple[MonaContext, float] | None:
        """Adopt the request's context, or open one; returns what ``exit`` must close."""
        with _ENTER:
            current = current_var.get()
            if current is PASS_THROUGH:  # an excluded request: nothing is recorded
                return None
            if current is not None and current.request is not None:
                # a context continued from the caller keeps the caller's class: renamed, it
                # would become another record than the one the caller's fields are in
                if self.explicit and not getattr(current.request, "continued", False):
                    current.rename(self.explicit)
                if self.fields:
                    current.export(self.fields)
                return None
            ctx = context(self.explicit or self.default).open()
            if self.fields:
                ctx.export(self.fields)
            return ctx, time.perf_counter()
        return None

    def failed(self, opened: tuple[MonaContext, float] | None, exc: BaseException) -> None:
        if opened is not None:
            with contextlib.suppress(Exception):
                opened[0].record({"exception_type": type(exc).__name__})

    def exit(self, opened: tuple[MonaContext, float] | None) -> None:
        if opened is None:
            return
        ctx, started = opened
        with _EXIT:
            ctx.record({"duration_ms": round((time.perf_counter() - started) * 1000, 3)})
            ctx.close()
