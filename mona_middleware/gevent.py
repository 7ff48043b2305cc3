"""gevent: the request's context follows ``gevent.spawn``, once ``patch()`` has run.

    import mona_middleware.gevent
    mona_middleware.gevent.patch()   # once, at start-up (app module, gunicorn.conf.py)

Why it is needed: a new greenlet starts in an *empty* ``contextvars`` context (unlike an
asyncio task, which copies its creator's), so ``export()`` inside a plain
``gevent.spawn(fn)`` finds no context, with or without ``monkey.patch_all()``.

What ``patch()`` does, and why it is the cheap way: it registers one of gevent's own
spawn callbacks (``Greenlet.add_spawn_callback``), which gevent calls in the starting
greenlet as each ``Greenlet`` starts (``gevent.spawn``, ``spawn_later``, ``Pool`` and
``Group`` spawns, and, under ``monkey.patch_all()``, threads). When a Mona context is
current there, the new greenlet gets a ``contextvars`` context holding that one Mona
context, nothing else; when none is (the server's accept loop), nothing is done. No
class is replaced and no other context variable changes; a greenlet that already has
a ``gr_context`` keeps it. ``gevent.spawn_raw`` (a bare greenlet) has no callbacks:
wrap its function with ``mona_middleware.wrap(fn)``, which works without ``patch()``.
"""

from __future__ import annotations

import contextvars
from typing import Any

try:
    from gevent import Greenlet
except ImportError as exc:  # pragma: no cover - exercised by the tox core env
    raise ImportError(
        "mona_middleware.gevent needs gevent: pip install 'mona_middleware[gevent]'"
    ) from exc

from ._api.context import current_var

__all__ = ["patch", "patched", "unpatch"]


def _inherit(greenlet: Any) -> None:
    """The spawn callback: runs in the greenlet that starts ``greenlet``, before it runs."""
    ctx = current_var.get()
    if ctx is None or greenlet.gr_context is not None:
        return
    inherited = contextvars.Context()
    inherited.run(current_var.set, ctx)
    greenlet.gr_context = inherited


_state = {"patched": False}


def patch() -> None:
    """Make greenlets started inside a Mona context run in it; calling it again is harmless.

    >>> patch(); patched()
    True
    """
    Greenlet.add_spawn_callback(_inherit)
    _state["patched"] = True


def unpatch() -> None:
    """Undo ``patch()`` (tests; greenlets already started keep their context)."""
    Greenlet.remove_spawn_callback(_inherit)
    _state["patched"] = False


def patched() -> bool:
    """Whether ``patch()`` is in force."""
    return _state["patched"]
