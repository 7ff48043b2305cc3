"""Any WSGI app: one Mona context per request, closed when the response has been sent.

    app.wsgi_app = MonaWSGIMiddleware(app.wsgi_app, context_class="MY_SERVICE")

Needs nothing but the standard library, so it wraps werkzeug/Flask, Django's WSGI
handler, Falcon or Bottle alike. A WSGI response may stream: the context closes when
the server closes the returned iterable (PEP 3333), not when the app returns, unless
the body is already whole (a list or tuple, or one MonaFlask closed at teardown). A body
built by the server's ``wsgi.file_wrapper`` is returned as it is (a close hook added),
so the server can still ``sendfile()`` it.

The context is current only while the app runs: it is left when the app returns and
set again around each chunk of the body and around ``close()`` (as Sentry's WSGI
middleware does with its scope), so a body nobody closes (a test client that never
reads it) never leaves a stale context in the thread, and a streaming body still
exports into its own context. A body dropped unclosed still delivers its context when
it is collected, counted in ``stats()["contexts_closed_unclosed_body"]``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import GeneratorType
from typing import Any

from ._api.context import current_var, passing_through
from ._runtime import process
from ._util.log import Guard
from ._web.recorder import WebContext, WebRecorder
from ._web.routes import prepare_app, wsgi_route

__all__ = ["MonaWSGIMiddleware"]

_ROUTE = Guard("could not read the request's route")
_START = Guard("could not open the request's context")
_UNCLOSED = Guard("could not close the context of a body dropped unclosed")
_Environ = dict[str, Any]
_Headers = list[tuple[str, str]]


class MonaWSGIMiddleware:
    """WSGI middleware; ``options`` are the common adapter and exporter options.

    >>> def app(environ, start_response):
    ...     start_response("200 OK", [])
    ...     return [b"hi"]
    >>> app = MonaWSGIMiddleware(app, context_class="HELLO", handle_sigterm=False)
    """

    # Set by an adapter that reads the status itself (MonaFlask, from Flask's response):
    # then ``start_response`` is passed to the app as it is, with no wrapper per request.
    status_known = False

    def __init__(self, app: Callable[..., Iterable[bytes]], **options: Any) -> None:
        self.app = app
        self.recorder = WebRecorder(options)
        prepare_app(app)  # Falcon's and Pyramid's templates need a hook in the app

    def __call__(self, environ: _Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        recorder = self.recorder
        try:
            ctx = recorder.start(
                environ.get("REQUEST_METHOD", "GET"),
                environ.get("PATH_INFO", ""),
                (lambda name: _header(environ, name)) if recorder.reads_headers else None,
            )
        except Exception as exc:  # an environ that is no dict: the app will say so
            _START.caught(exc)
            ctx = None
        if ctx is None:  # excluded or off: run without any context a server thread kept
            with passing_through():
                return self.app(environ, start_response)
        state = ctx.request
        options = recorder.options
        if options.request_hook is not None:
            recorder.call_hook(options.request_hook, ctx, environ)
        response_hook = options.response_hook
        if self.status_known and response_hook is None:
            record_status = start_response
        else:

            def record_status(status: str, headers: _Headers, exc_info: Any = None) -> Any:
                try:  # noqa: SIM105 - contextlib.suppress costs a µs on every request
                    state.status = int(status[:3])
                except Exception:
                    pass  # not a status line PEP 3333 allows; the server will say so
                if response_hook is not None:
                    recorder.call_hook(response_hook, ctx, environ, status, headers)
                return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, record_status)
        except BaseException as exc:
            self._failed(ctx, environ, exc)
            raise
        if state.finished:  # the framework closed it already
            return body
        if state.route is None:
            self._route(state, environ)
        if state.whole or type(body) is list or type(body) is tuple:
            recorder.finish(ctx)  # built whole (MonaFlask says so): nothing left to stream
            return body
        ctx.leave()  # current again only around each chunk and close(): see the docstring
        try:
            wrapper = environ.get("wsgi.file_wrapper")
            if (
                isinstance(wrapper, type)
                and isinstance(body, wrapper)
                and _close_with(body, ctx, recorder)
            ):
                return body  # still the server's own type: it may sendfile() it
        except Exception as exc:  # an environ or a body of a kind we cannot read
            _START.caught(exc)
        return _ClosingBody(body, ctx, recorder)

    def _failed(self, ctx: WebContext, environ: _Environ, exc: BaseException) -> None:
        """The app raised before it returned a body: its context closes now, with the error."""
        state = ctx.request
        state.exception = exc
        self._route(state, environ)
        self.recorder.finish(ctx)

    def _route(self, state: Any, environ: _Environ) -> None:
        """The template, read once the app has routed (never the raw path); never raises."""
        if state.route is None and not state.finished:
            try:
                state.route = wsgi_route(environ, self.recorder.options.route_resolver)
            except Exception as exc:
                _ROUTE.caught(exc)


# PEP 3333 keeps these two out of the HTTP_ namespace.
_UNPREFIXED = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


def _header(environ: _Environ, name: str) -> str | None:
    key = name.upper().replace("-", "_")
    return environ.get(key if key in _UNPREFIXED else "HTTP_" + key)


def _close_with(body: Any, ctx: WebContext, recorder: WebRecorder) -> bool:
    """Make closing the server's ``wsgi.file_wrapper`` close the context; False if it cannot.

    Wrapping it would hide it from the server, which only uses ``sendfile()`` for an
    instance of its own wrapper type (gunicorn, wsgiref...). Their wrappers take ``close``
    from the file as an instance attribute, so ours can take its place. A wrapper
    dropped unclosed still delivers the context (``weakref.finalize``: this rare path
    pays for it, the common ones do not).
    """
    original = getattr(body, "close", None)

    def close() -> None:
        token = current_var.set(ctx)
        try:
            if original is not None:
                original()
        finally:
            current_var.reset(token)
            recorder.finish(ctx)

    try:
        body.close = close
    except (AttributeError, TypeError):  # __slots__ or a read-only close: wrap after all
        return False
    with contextlib.suppress(TypeError):  # not weakly referenceable: the server closes it
        weakref.finalize(body, _dropped_unclosed, ctx, recorder)
    return True


def _dropped_unclosed(ctx: WebContext, recorder: WebRecorder) -> None:
    """A body collected without ``close()``: the context is delivered all the same, and
    counted apart (the server, or a test client, broke PEP 3333's promise to close)."""
    state = ctx.request
    if state is None or state.finished:
        return
    try:
        process.count("contexts_closed_unclosed_body")
        recorder.finish(ctx, flush=False)  # a collector's thread: never wait for the backend
    except Exception as exc:
        _UNCLOSED.caught(exc)


class _ClosingBody:
    """The app's iterable, passed through; closing it closes the request's context."""

    __slots__ = ("_body", "_ctx", "_recorder")

    def __init__(self, body: Iterable[bytes], ctx: WebContext, recorder: WebRecorder) -> None:
        self._body = body
        self._ctx = ctx
        self._recorder = recorder

    def __iter__(self) -> Iterator[bytes]:
        ctx = self._ctx
        set_var, reset_var = current_var.set, current_var.reset
        chunks = self._body
        if type(chunks) is not GeneratorType:  # a generator runs no code until next()
            token = set_var(ctx)
            try:
                chunks = iter(chunks)  # a custom __iter__ may run the app's code
            finally:
                reset_var(token)
        take = chunks.__next__
        while True:
            token = set_var(ctx)  # the app's code runs in its context, chunk by chunk
            try:
                chunk = take()
            except StopIteration:
                reset_var(token)
                break
            except BaseException as exc:  # a streaming view failed mid-body: it is over
                reset_var(token)
                ctx.request.exception = exc
                self._recorder.finish(ctx)
                raise
            reset_var(token)
            yield chunk  # the server's code runs outside it
        # Fully iterated is fully sent; test clients that never call close() see it too.
        self._recorder.finish(ctx)

    def close(self) -> None:
        token = current_var.set(self._ctx)
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            current_var.reset(token)
            self._recorder.finish(self._ctx)

    def __del__(self) -> None:
        try:
            if not self._ctx.request.finished:  # closed or fully sent: nearly always
                _dropped_unclosed(self._ctx, self._recorder)
        except Exception:  # the interpreter's exit: modules half gone
            pass
