"""``@monitor``: put a view, or any function, under a context class.

On a view inside a monitored request it names that request's context class (and adds
static fields); anywhere else (a batch job, a Celery task body) each call opens its own
context with the call's duration and exception type.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._log import logger
from .context import MonaContext, context, current_context

F = TypeVar("F", bound=Callable[..., Any])


def monitor(
    context_class: str | Callable[..., Any] | None = None,
    *,
    fields: Mapping[str, Any] | None = None,
) -> Any:
    """Decorate a sync or async function; keeps its signature (``functools.wraps``).

    >>> @monitor("NIGHTLY_JOB", fields={"team": "ml"})
    ... def nightly():
    ...     export({"rows": 10})
    """
    if callable(context_class):  # used bare: @monitor
        return monitor()(context_class)

    def decorate(fn: F) -> F:
        scope = _Scope(context_class, fn.__name__.upper(), dict(fields or {}))
        if inspect.iscoroutinefunction(fn):

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

            return run_async  # type: ignore[return-value]

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

        return run  # type: ignore[return-value]

    return decorate


class _Scope:
    """What one decorated function does around each call; never raises into it."""

    def __init__(self, explicit: str | None, default: str, fields: dict[str, Any]) -> None:
        self.explicit = explicit
        self.default = default
        self.fields = fields

    def enter(self) -> tuple[MonaContext, float] | None:
        """Adopt the request's context, or open one; returns what ``exit`` must close."""
        try:
            current = current_context()
            if current is not None and current.request is not None:
                if self.explicit:
                    current.rename(self.explicit)
                if self.fields:
                    current.export(self.fields)
                return None
            ctx = context(self.explicit or self.default).open()
            if self.fields:
                ctx.export(self.fields)
            return ctx, time.perf_counter()
        except Exception:
            logger.exception("mona_middleware: @monitor could not open a context")
            return None

    def failed(self, opened: tuple[MonaContext, float] | None, exc: BaseException) -> None:
        if opened is not None:
            opened[0]._ops.append({"exception_type": type(exc).__name__})

    def exit(self, opened: tuple[MonaContext, float] | None) -> None:
        if opened is None:
            return
        ctx, started = opened
        try:
            ctx._ops.append({"duration_ms": round((time.perf_counter() - started) * 1000, 3)})
            ctx.close()
        except Exception:
            logger.exception("mona_middleware: @monitor could not close its context")
