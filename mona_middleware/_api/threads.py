"""Carrying the current context into threads, which (unlike asyncio tasks) start empty.

``asyncio`` tasks and ``asyncio.to_thread`` copy contextvars by themselves; a plain
``threading.Thread`` or an executor does not, hence ``MonaThread`` and ``wrap``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["MonaThread", "wrap"]

P = ParamSpec("P")
R = TypeVar("R")


class MonaThread(threading.Thread):
    """A ``Thread`` that runs in the context of the code that created it, as mona-client's did.

    >>> import mona_middleware as mona
    >>> with mona.context("JOB", context_id="j-1"):
    ...     seen = []
    ...     t = MonaThread(target=lambda: seen.append(mona.current_context().context_id))
    ...     t.start(); t.join()
    >>> seen
    ['j-1']
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mona_context = contextvars.copy_context()

    def run(self) -> None:
        self._mona_context.run(super().run)


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to the current context, e.g. ``executor.submit(mona.wrap(work), item)``.

    Each call runs in its own copy of the captured contextvars, so one wrapped function
    may run in several threads at once.
    """
    captured = contextvars.copy_context()

    def run_in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    with contextlib.suppress(Exception):  # attributes that cannot be read: it still runs
        functools.update_wrapper(run_in_context, fn)
    return run_in_context
