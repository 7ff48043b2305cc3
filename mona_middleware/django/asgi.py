"""Django under ASGI: lifespan answered, so every worker flushes when the server stops it.

Django's ASGI handler refuses lifespan. That is harmless under a single ``uvicorn``
process, whose SIGTERM ends in ``atexit``; but ``uvicorn --workers N`` (and
``gunicorn --preload`` with uvicorn workers) load the app where the server owns SIGTERM,
and uvicorn re-raises it once stopped, so each worker dies without ``atexit`` and loses
what it held. The lifespan shutdown, sent once every request has finished (Django's
``response.close()`` included), is the moment to flush.

So a handler that ``MonaMiddleware`` is built into answers lifespan itself (see
:func:`answer_lifespan_in`): the stock ``asgi.py`` (``get_asgi_application()``, only
``MIDDLEWARE`` edited) flushes like ``asgi_application()``. A router in front of it
(Channels' ``ProtocolTypeRouter``) refuses lifespan before Django sees it: wrap the
router in ``MonaLifespan`` there.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any

from ..asgi import MonaLifespan, Receive, Scope, Send, answer_lifespan, lifespan_wrapped

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["answer_lifespan_in", "answers_lifespan", "asgi_application", "building_handler"]

_ANSWERING: dict[type, type] = {}  # a handler class -> its subclass answering lifespan


def asgi_application() -> Any:
    """``get_asgi_application()`` answering lifespan and flushing at ``lifespan.shutdown``.

    Use it in place of Django's in ``asgi.py``; as there, set the settings module first::

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
        from mona_middleware.django import asgi_application

        application = asgi_application()

    Keep the server's lifespan on (uvicorn's default ``auto``). HTTP and websocket scopes
    go to Django unchanged; ``MonaMiddleware`` in ``MIDDLEWARE`` still does the monitoring.
    """
    from django.core.asgi import get_asgi_application

    return MonaLifespan(get_asgi_application())


def building_handler() -> Any:
    """The Django handler whose ``load_middleware`` is building the caller's middleware,
    or None (a bounded look up the stack, once per middleware built)."""
    from django.core.handlers.base import BaseHandler

    frame: FrameType | None = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            return None
        if frame.f_code.co_name == "load_middleware":
            handler = frame.f_locals.get("self")
            return handler if isinstance(handler, BaseHandler) else None
        frame = frame.f_back
    return None


def answer_lifespan_in(handler: Any) -> None:
    """Make this ``ASGIHandler`` answer lifespan through ours and flush at its shutdown.

    Only this instance changes: its class becomes a subclass whose ``__call__`` takes the
    lifespan scope (running Django's own lifespan, should a Django speak it) and passes
    every other scope to Django's, unchanged.
    """
    cls = type(handler)
    if getattr(cls, "_mona_answers_lifespan", False):
        return
    answering = _ANSWERING.get(cls)
    if answering is None:
        namespace = {
            "__call__": _answering_call(cls.__call__),
            "_mona_answers_lifespan": True,
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
        }
        answering = _ANSWERING[cls] = type(cls.__name__, (cls,), namespace)
    handler.__class__ = answering


def answers_lifespan(app: Any) -> bool:
    """Whether ``app`` flushes at lifespan shutdown: one of our wrappers, or a Django
    handler built with ``MonaMiddleware``."""
    return lifespan_wrapped(app) or getattr(type(app), "_mona_answers_lifespan", False)


def _answering_call(original: Any) -> Any:
    async def __call__(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(functools.partial(original, self), scope, receive, send)
            return
        await original(self, scope, receive, send)

    return __call__
