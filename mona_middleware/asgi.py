"""Any ASGI app (Starlette, FastAPI...): one Mona context per HTTP request.

    app = Starlette(routes=..., middleware=[Middleware(MonaASGIMiddleware, context_class="API")])
    app.add_middleware(MonaASGIMiddleware, context_class="API")      # FastAPI alike

Pure ASGI on purpose: ``BaseHTTPMiddleware`` runs the endpoint in another task, so the
request's ``ContextVar`` would not reach it. Here the context is opened in the request's
own task before the app runs, so the endpoint, its dependencies, sync endpoints in the
thread pool and the tasks a streaming response starts all see it.

When it closes: the response counts as sent at its last body message (``more_body``
false), and ``duration_ms`` ends there; the context itself closes when the app returns,
so what Starlette/FastAPI ``BackgroundTasks`` export (they run after the body is sent,
in the same task) lands in the request's context, not in a follow-up message.

Websockets: one context per connection (class ``websocket_context_class``), open from
the connect to the app's return, so what the endpoint exports while the connection lives
lands in it, with ``messages_received``, ``messages_sent``, ``close_code``,
``duration_ms``, the route template and, for an error, ``exception_type``;
``websockets=False`` passes them through untouched.

Lifespan: the exporter is flushed (off the event loop) before ``lifespan.shutdown.complete``
goes back to the server, so a stopping uvicorn/gunicorn worker sends what it holds. An
app that does not speak lifespan (it refuses the scope before reading
``lifespan.startup``, as Django does with a ``ValueError``) gets the protocol answered
for it, with a warning; an app that fails once it has read ``lifespan.startup`` fails as
it would without us, so the server decides whether it starts. Keep lifespan on
(uvicorn's default ``auto``): uvicorn >= 0.29 re-raises SIGTERM after its shutdown, so a
process whose SIGTERM action is the default dies without running ``atexit``.

Options: a directly built middleware raises ``MonaConfigError`` for a bad option, at
start-up. Starlette and FastAPI build their middleware stack on the first call
(``add_middleware``, ``middleware=[...]``), where raising would fail every request: there
the error is logged once at ERROR, naming the option, and requests pass through
unmonitored.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ._api.context import passing_through
from ._runtime import process
from ._util.log import Guard, logger
from ._web.recorder import WebContext, WebRecorder
from ._web.routes import asgi_route, prepare_app
from .errors import MonaConfigError

if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "MonaASGIMiddleware",
    "MonaLifespan",
    "answer_lifespan",
    "lifespan_answered",
    "lifespan_wrapped",
    "lifespan_wrapper_built",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_LAST_BODY = frozenset({"http.response.body", "http.response.zerocopy"})
_ROUTE = Guard("could not read the request's route")
_CLOSE = Guard("could not close the request's context")
_FLUSH = Guard("flush at lifespan shutdown failed")


class MonaASGIMiddleware:
    """ASGI middleware; ``options`` are the common adapter and exporter options.

    Hooks: ``request_hook(ctx, scope)``, ``response_hook(ctx, scope, status, headers)``.

    >>> async def app(scope, receive, send): ...
    >>> app = MonaASGIMiddleware(app, context_class="HELLO", handle_sigterm=False)
    """

    recorder: WebRecorder | None  # None: an option error found on a call (passes through)

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        global _wrappers_built
        self.app = app
        try:
            self.recorder = WebRecorder(options)
        except MonaConfigError as exc:
            if not _built_during_a_call():
                raise  # at start-up: the deployment stops, naming the option
            _unusable_options(exc)
            self.recorder = None
        _wrappers_built = True
        prepare_app(app)  # Quart's and Falcon's templates need a hook in the app

    @classmethod
    def with_recorder(cls, app: ASGIApp, recorder: WebRecorder) -> MonaASGIMiddleware:
        """The middleware around ``app`` sharing an adapter's ``recorder`` (Django Channels)."""
        middleware = cls.__new__(cls)
        middleware.app, middleware.recorder = app, recorder
        return middleware

    with_monitor = with_recorder  # its name before 0.2 ("monitor" is the decorator's word now)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        recorder = self.recorder
        if scope["type"] != "http" or recorder is None:
            await self._other_scope(scope, receive, send)
            return
        path = scope.get("path", "")
        ctx = recorder.start(
            scope.get("method", "GET"), path, _header(scope) if recorder.reads_headers else None
        )
        if ctx is None:  # excluded or off: run without any context the server's task leaked
            with passing_through():
                await self.app(scope, receive, send)
            return
        # The request's own coroutine, not a second one: one frame less per request.
        state = ctx.request
        arrived = (path, scope.get("root_path", ""))  # routers rewrite them
        sent_at: float | None = None
        options = recorder.options
        if options.request_hook is not None:
            recorder.call_hook(options.request_hook, ctx, scope)
        response_hook = options.response_hook

        async def send_recording(message: Message) -> None:
            nonlocal sent_at
            kind = message["type"]
            if kind == "http.response.start":
                state.status = message.get("status")
                if response_hook is not None:
                    headers = message.get("headers")
                    recorder.call_hook(response_hook, ctx, scope, state.status, headers)
            await send(message)
            if sent_at is None and (
                not message.get("more_body", False)
                if kind in _LAST_BODY
                else kind == "http.response.pathsend"
            ):
                sent_at = time.perf_counter()

        try:
            await self.app(scope, receive, send_recording)
        except BaseException as exc:
            state.exception = _single_error(exc)  # the status stays what was sent, or 500
            raise
        finally:
            self._close(ctx, scope, arrived, sent_at)
            if recorder.flush_after:
                await _flush_off_loop()  # serverless: delivered before the app returns

    def _other_scope(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """What runs a scope that is not an HTTP request (or any, with unusable options).

        Not a coroutine: it returns the awaitable, so no extra frame sits under a
        long-lived websocket connection."""
        recorder = self.recorder
        if scope["type"] == "lifespan":
            return _Lifespan(self.app).run(scope, receive, send)
        if scope["type"] == "websocket" and recorder is not None and recorder.options.websockets:
            return self._websocket(scope, receive, send)
        return self.app(scope, receive, send)  # others (or unusable options): untouched

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One context for the whole connection: messages each way, how and when it closed.

        ``close_code`` is the first close either side sent: the app's ``websocket.close``
        (1000 unless it says), or the client's ``websocket.disconnect`` (1005 unless it
        says); an app that raised after accepting gets 1011, what servers then send.
        """
        recorder: Any = self.recorder  # set: __call__ passes everything through without one
        ctx = recorder.start("GET", scope.get("path", ""), _header(scope), websocket=True)
        if ctx is None:
            with passing_through():
                await self.app(scope, receive, send)
            return
        state = ctx.request
        arrived = (scope.get("path", ""), scope.get("root_path", ""))
        recorder.call_hook(recorder.options.request_hook, ctx, scope)

        async def receive_counting() -> Message:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                state.received += 1
            elif kind == "websocket.disconnect" and state.close_code is None:
                state.close_code = message.get("code") or 1005
            return message

        async def send_counting(message: Message) -> None:
            kind = message["type"]
            if kind == "websocket.send":
                await send(message)
                state.sent += 1
                return
            if kind == "websocket.accept":
                state.accepted = True
            elif kind == "websocket.close" and state.close_code is None:
                state.close_code = message.get("code") or 1000
            await send(message)

        try:
            await self.app(scope, receive_counting, send_counting)
        except BaseException as exc:
            state.exception = _single_error(exc)
            if isinstance(exc, Exception) and state.accepted and state.close_code is None:
                state.close_code = 1011
            raise
        finally:
            self._close(ctx, scope, arrived, None)

    def _close(
        self, ctx: WebContext, scope: Scope, arrived: tuple[str, str], sent_at: float | None
    ) -> None:
        """Add the route and close; runs in ``finally``, so it must never raise."""
        recorder: Any = self.recorder  # set: only a monitored request gets here
        try:  # guarded sites (see Guard): try is free on this path, a with is not
            state = ctx.request
            if state.route is None:  # one an inner layer set wins (Django Channels')
                state.route = asgi_route(scope, *arrived, recorder.options.route_resolver)
            if sent_at is not None:
                state.ended = sent_at  # the response's duration, not the background tasks
        except Exception as exc:
            _ROUTE.caught(exc)
        try:
            recorder.finish(ctx, flush=False)  # flushed off the loop by the caller
        except Exception as exc:
            _CLOSE.caught(exc)


class MonaLifespan:
    """Flushes at ``lifespan.shutdown`` for an ASGI app that has no ``MonaASGIMiddleware``.

    Django's ASGI handler refuses lifespan, and under ``uvicorn --workers N`` (or
    ``gunicorn --preload`` with uvicorn workers) the app is loaded where the server owns
    SIGTERM, which uvicorn re-raises once stopped: ``atexit`` never runs, and the lifespan
    shutdown is the one moment left to send what the worker holds. This answers lifespan
    for the app when it does not speak it (its own lifespan runs when it does), flushes
    the exporter before ``lifespan.shutdown.complete``, and passes every other scope
    through untouched. Answering for an app that refuses lifespan is what this wrapper
    is for, so that refusal is logged at DEBUG only (``MonaASGIMiddleware`` warns). For
    Django, ``mona_middleware.django.asgi_application()`` is this around
    ``get_asgi_application()``.

    >>> async def app(scope, receive, send): ...
    >>> application = MonaLifespan(app)
    """

    def __init__(self, app: ASGIApp) -> None:
        global _wrappers_built
        self.app = app
        _wrappers_built = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _Lifespan(self.app, refusal_expected=True).run(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def answer_lifespan(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run one lifespan session of ``app`` as ``MonaLifespan`` does: its own when it speaks
    lifespan, answered for it when it refuses, flushed before ``shutdown.complete``."""
    await _Lifespan(app, refusal_expected=True).run(scope, receive, send)


_wrappers_built = False  # whether this process built a MonaLifespan or a MonaASGIMiddleware
_lifespan_pid: int | None = None  # the process in which a server sent lifespan to one of ours
# How an app says it handles no such scope when handed a lifespan one: a plain built-in
# error, raised before it read anything (Django's and Channels' ValueError, an ``assert
# scope["type"] == "http"``, a KeyError on ``scope["method"]``, ``RuntimeError("not
# supported")``). The app's own exception classes, and I/O errors, are failures: those
# propagate, and the server decides (Starlette's ``test_exception_in_middleware``).
_REFUSALS = (ValueError, TypeError, LookupError, AssertionError, RuntimeError)
_reported_options: set[str] = set()  # option errors already logged (once each)


def lifespan_wrapped(app: Any) -> bool:
    """Whether ``app`` is one of ours, so lifespan shutdown flushes the exporter."""
    return isinstance(app, (MonaASGIMiddleware, MonaLifespan))


def lifespan_wrapper_built() -> bool:
    """Whether this process built one (Django's middleware asks, under ASGI, once)."""
    return _wrappers_built


def lifespan_answered() -> bool:
    """Whether a server sent lifespan to one of ours in this process, so that its
    shutdown flushes (Django's middleware asks at the first ASGI request)."""
    return _lifespan_pid == os.getpid()


def _refusal(exc: Exception) -> bool:
    """Whether ``exc``, raised before the app read anything, says "no lifespan here"."""
    return isinstance(exc, _REFUSALS) and type(exc).__module__ == "builtins"


def _built_during_a_call() -> bool:
    """Whether the middleware is being built inside an ASGI call: a framework building
    its stack lazily (Starlette, FastAPI), on the first lifespan or request scope.

    Any caller up the stack with ``(scope, receive, send)`` parameters is one; a bounded
    walk, once per middleware built.
    """
    frame: FrameType | None = sys._getframe(2)
    for _ in range(64):
        if frame is None:
            return False
        code = frame.f_code
        count = code.co_argcount
        if count >= 3 and code.co_varnames[count - 3 : count] == ("scope", "receive", "send"):
            return True
        frame = frame.f_back
    return False


def _unusable_options(exc: MonaConfigError) -> None:
    """Log an option error found on a call, once per error per process."""
    message = str(exc)
    if message in _reported_options or len(_reported_options) >= 100:
        return
    _reported_options.add(message)
    logger.error(
        "mona_middleware: MonaASGIMiddleware cannot monitor this app: %s. The framework "
        "built its middleware on a call, where raising would fail every request, so "
        "requests pass through unmonitored until the option is fixed",
        message,
    )


def _single_error(exc: BaseException) -> BaseException:
    """The one error inside a one-member exception group, else ``exc`` itself.

    anyio >= 4 task groups wrap even a single error in an exception group, and Starlette
    before 0.46 lets that group out of a ``StreamingResponse`` whose body fails (from 0.42
    on, only under servers speaking ASGI < 2.4): recorded as is, every such failure would
    read ``exception_type: ExceptionGroup``. What propagates is left unchanged.
    """
    groups = _exception_group_types()
    while isinstance(exc, groups) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _exception_group_types() -> tuple[Any, ...]:  # (BaseExceptionGroup is 3.11's)
    builtin = getattr(builtins, "BaseExceptionGroup", None)  # Python >= 3.11
    if builtin is not None:
        return (builtin,)
    backport = sys.modules.get("exceptiongroup")  # Python 3.10: anyio's backport, once loaded
    return (backport.BaseExceptionGroup,) if backport is not None else ()


def _header(scope: Scope) -> Callable[[str], str | None]:
    """A lookup over the raw ``(name, value)`` byte pairs; only called for opted-in headers."""

    def header(name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        key: bytes
        value: bytes  # ASGI's header pairs
        for key, value in scope.get("headers") or ():
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    return header


async def _flush_off_loop() -> None:
    """Flush in a worker thread: the loop keeps serving while the backend answers."""
    with _FLUSH:
        timeout = process.config().shutdown_timeout
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): blocking is acceptable at shutdown
            process.flush(timeout)
            return
        await asyncio.to_thread(process.flush, timeout)


class _Lifespan:
    """One lifespan session: the app's own, flushed at shutdown, or answered for it.

    The app's failures are the server's to judge, as without us: one raised after it read
    ``lifespan.startup`` (a database that is not there) propagates, so the server fails
    the start-up (``--lifespan on``, test clients) or goes on without lifespan (``auto``).
    Only a refusal before reading it (a plain built-in error, see ``_REFUSALS``) is
    answered for the app.
    """

    def __init__(self, app: ASGIApp, refusal_expected: bool = False) -> None:
        self.app = app
        self.refusal_expected = refusal_expected
        self.received: set[str] = set()
        self.sent: set[str] = set()
        self.flushed = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        global _lifespan_pid
        _lifespan_pid = os.getpid()

        async def receive_noting() -> Message:
            message = await receive()
            self.received.add(message["type"])
            return message

        async def send_flushing(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.flush()
            self.sent.add(message["type"])
            await send(message)

        try:
            await self.app(scope, receive_noting, send_flushing)
        except Exception as exc:
            if self.received or self.sent or not _refusal(exc):
                if "lifespan.shutdown" in self.received:
                    await self.flush()  # the app failed in its shutdown: still send ours
                raise
            self.refused(exc)
        if not self.answered_startup():
            await self.answer(receive_noting, send)

    def refused(self, exc: Exception) -> None:
        if self.refusal_expected:
            logger.debug("mona_middleware: the app does not speak lifespan; answering it")
            return
        logger.warning(
            "mona_middleware: the app raised %s when handed the lifespan scope, before "
            "reading lifespan.startup, so it does not speak lifespan: answering it for the "
            "app, so that its shutdown flushes what it exported",
            type(exc).__name__,
            exc_info=exc,
        )

    def answered_startup(self) -> bool:
        return bool(self.sent & {"lifespan.startup.complete", "lifespan.startup.failed"})

    async def answer(self, receive: Receive, send: Send) -> None:
        """Speak the protocol for an app without lifespan: start, then flush at shutdown."""
        if "lifespan.startup" not in self.received:
            await receive()
        await send({"type": "lifespan.startup.complete"})
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        await self.flush()
        await send({"type": "lifespan.shutdown.complete"})

    async def flush(self) -> None:
        if not self.flushed:
            self.flushed = True
            await _flush_off_loop()
