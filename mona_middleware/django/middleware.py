"""``MonaMiddleware``: one Mona context per Django request, sync or async.

    MIDDLEWARE = ["mona_middleware.django.MonaMiddleware", ...]   # first: it sees everything
    MONA = {"context_class": "RECOMMENDATIONS", "excluded_urls": ["^/health$"]}

The context opens before the rest of the chain runs (so ``export()`` in any view, sync
or async, finds it) and closes when the response has been sent (see ``closing``). Django
turns exceptions into responses inside the chain, so the exception type comes from
``process_exception`` and ``got_request_exception``, and the status from the response.

Built into Django's ``ASGIHandler`` (a server's, not a test client's), it makes that
handler answer lifespan, so each worker flushes at the server's lifespan shutdown (see
``asgi``); W003 is logged once per process when no lifespan reached us by the first
request.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed
from django.core.signals import got_request_exception
from django.http import HttpRequest

from .._api.context import passing_through
from .._util.log import Guard, logger
from .._web.recorder import RequestState, WebContext, WebRecorder
from ..asgi import lifespan_answered
from .asgi import answer_lifespan_in, building_handler
from .closing import close_after_sending
from .conf import build_recorder

__all__ = ["MonaMiddleware", "route_template"]

_REQUEST_ATTR = "_mona_context"
_FOLLOW = Guard("could not follow the response; its context closes now")
_LIFESPAN = Guard("could not make Django's ASGI handler answer lifespan")
_warned_pid: int | None = None  # the process that logged W003 at run time
GetResponse = Callable[[HttpRequest], Any]


class MonaMiddleware:
    """Django middleware (sync and async capable); options come from ``settings.MONA``.

    Hooks: ``request_hook(ctx, request)`` when the context opens and
    ``response_hook(ctx, request, response)`` when the view's response comes back.
    With ``MONA = {"enabled": False}`` Django drops it from the chain (``MiddlewareNotUsed``).

    >>> MIDDLEWARE = ["mona_middleware.django.MonaMiddleware"]  # in settings.py
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.recorder: WebRecorder = build_recorder()
        if not self.recorder.options.enabled:
            raise MiddlewareNotUsed("mona_middleware: disabled by settings.MONA['enabled']")
        self._is_async = iscoroutinefunction(get_response)
        served = False  # built into a server's ASGI handler (not a test client's)
        if self._is_async:
            markcoroutinefunction(self)
            with _LIFESPAN:
                from django.core.handlers.asgi import ASGIHandler

                handler = building_handler()
                if isinstance(handler, ASGIHandler):
                    answer_lifespan_in(handler)
                    served = True
        self._asgi_unchecked = served  # W003 at the first request, once per process
        # Exceptions raised outside the view (in another middleware) reach Django's 500
        # handler without passing process_exception; this signal sees those too.
        got_request_exception.connect(_record_uncaught, dispatch_uid=__name__)

    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self.__acall__(request)
        ctx = self._start(request)
        if ctx is None:  # excluded or off: run without any context the server's thread kept
            with passing_through():
                return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:  # only what Django itself lets through
            self._fail(ctx, request, exc)
            raise
        return self._respond(ctx, request, response)

    async def __acall__(self, request: HttpRequest) -> Any:
        if self._asgi_unchecked:
            self._asgi_unchecked = False
            _warn_without_lifespan()
        ctx = self._start(request)
        get_response: Callable[[HttpRequest], Awaitable[Any]] = self.get_response
        if ctx is None:
            with passing_through():
                return await get_response(request)
        try:
            response = await get_response(request)
        except BaseException as exc:  # including CancelledError: the client went away
            self._fail(ctx, request, exc)
            raise
        return self._respond(ctx, request, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Remember the view's exception; Django then turns it into the response we see."""
        state = _state(request)
        if state is not None:
            state.exception = exception

    def _start(self, request: HttpRequest) -> WebContext | None:
        recorder = self.recorder
        ctx = recorder.start(
            request.method or "GET", request.path_info, lambda name: request.headers.get(name)
        )
        if ctx is not None:
            setattr(request, _REQUEST_ATTR, ctx)  # for process_exception and the signal
            recorder.call_hook(recorder.options.request_hook, ctx, request)
        return ctx

    def _respond(self, ctx: WebContext, request: HttpRequest, response: Any) -> Any:
        """Record what the response says and arrange for the context to close once sent."""
        recorder = self.recorder
        following = False
        with _FOLLOW:
            state = ctx.request
            state.route = route_template(request)
            state.status = response.status_code
            if state.exception is not None and state.status < 500:
                state.exception = None  # Http404, PermissionDenied...: answered, not failed
            recorder.call_hook(recorder.options.response_hook, ctx, request, response)
            close_after_sending(response, lambda exc: self._finish(ctx, exc))
            following = True
        if not following:
            recorder.finish(ctx)
        return response

    def _fail(self, ctx: WebContext, request: HttpRequest, exc: BaseException) -> None:
        ctx.request.route = route_template(request)  # reads attributes only: cannot raise
        self._finish(ctx, exc)

    def _finish(self, ctx: WebContext, exc: BaseException | None) -> None:
        if exc is not None and not ctx.request.finished:
            ctx.request.exception = exc
        self.recorder.finish(ctx)


def route_template(request: HttpRequest) -> str | None:
    """The matched URL pattern: ``/items/<int:item_id>``, a ``re_path`` regex as written,
    or None when nothing matched (a 404 from the resolver).

    >>> route_template(HttpRequest()) is None
    True
    """
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if route is None:
        return None
    route = str(route)
    return route if route.startswith(("/", "^")) else "/" + route


def _warn_without_lifespan() -> None:
    """W003 at run time (no system check runs under uvicorn or gunicorn), once per process.

    Servers that speak lifespan send it before the first request: none having reached
    one of ours by then, nothing flushes when the server stops this worker (lifespan
    off, or a router in front of Django that refuses it).
    """
    global _warned_pid
    if _warned_pid == os.getpid() or lifespan_answered():
        return
    _warned_pid = os.getpid()
    from django.conf import settings

    from .checks import asgi_warning

    silenced = getattr(settings, "SILENCED_SYSTEM_CHECKS", ()) or ()
    if "mona_middleware.W003" not in silenced:
        logger.warning("%s", asgi_warning("Django's ASGI application"))


def _state(request: HttpRequest | None) -> RequestState | None:
    ctx = getattr(request, _REQUEST_ATTR, None)
    return None if ctx is None else ctx.request


def _record_uncaught(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """``got_request_exception``: Django is turning this exception into a 500.

    Sent from inside the ``except`` block (asgiref re-raises it in the worker thread under
    ASGI), so ``sys.exc_info()`` holds the exception.
    """
    state = _state(request)
    exc = sys.exc_info()[1]
    if state is not None and exc is not None and not state.finished:
        state.exception = exc
