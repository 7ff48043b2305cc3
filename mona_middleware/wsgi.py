"""Any WSGI app: one Mona context per request, closed when the response has been sent.

    app.wsgi_app = MonaWSGIMiddleware(app.wsgi_app, context_class="MY_SERVICE")

Needs nothing but the standard library, so it wraps werkzeug/Flask, Django's WSGI
handler, Falcon or Bottle alike. A WSGI response may stream: the context closes when
the server closes the returned iterable (PEP 3333), not when the app returns, unless
the body is already whole (a list or tuple, or one MonaFlask closed at teardown). A body
built by the server's ``wsgi.file_wrapper`` is returned as it is (a close hook added),
so the server can still ``sendfile()`` it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._api.context import MonaContext, passing_through
from ._util.log import Guard
from ._web.recorder import WebMonitor
from ._web.routes import prepare_app, wsgi_route

__all__ = ["MonaWSGIMiddleware"]

_ROUTE = Guard("could not read the request's route")


class MonaWSGIMiddleware:
    """WSGI middleware; ``options`` are the common adapter and exporter options.

    >>> def app(environ, start_response):
    ...     start_response("200 OK", [])
    ...     return [b"hi"]
    >>> app = MonaWSGIMiddleware(app, context_class="HELLO", handle_sigterm=False)
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], **options: Any) -> None:
        self.app = app
        self.monitor = WebMonitor(options)
        prepare_app(app)  # Falcon's and Pyramid's templates need a hook in the app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        monitor = self.monitor
        ctx = monitor.start(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", ""),
            (lambda name: _header(environ, name)) if monitor.reads_headers else None,
        )
        if ctx is None:  # excluded or off: run without any context a server thread kept
            with passing_through():
                return self.app(environ, start_response)
        state = ctx.request
        options = monitor.options
        if options.request_hook is not None:
            monitor.call_hook(options.request_hook, ctx, environ)
        response_hook = options.response_hook

        def record_status(status: str, headers: list, exc_info: Any = None) -> Any:
            try:  # noqa: SIM105 - contextlib.suppress costs a µs on every request
                state.status = int(status[:3])
            except ValueError:
                pass  # not a status line PEP 3333 allows; the server will say so
            if response_hook is not None:
                monitor.call_hook(response_hook, ctx, environ, status, headers)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, record_status)
        except BaseException as exc:
            state.exception = exc
            self._route(state, environ)
            monitor.finish(ctx)
            raise
        if state.finished:  # the framework closed it already (MonaFlask, a whole body)
            return body
        if state.route is None:
            self._route(state, environ)
        if type(body) is list or type(body) is tuple:  # built whole: nothing left to stream
            monitor.finish(ctx)
            return body
        wrapper = environ.get("wsgi.file_wrapper")
        if (
            isinstance(wrapper, type)
            and isinstance(body, wrapper)
            and _close_with(body, ctx, monitor)
        ):
            return body  # still the server's own type: it may sendfile() it
        return _ClosingBody(body, ctx, monitor)

    def _route(self, state: Any, environ: dict[str, Any]) -> None:
        """The template, read once the app has routed (never the raw path); never raises."""
        if state.route is None and not state.finished:
            try:
                state.route = wsgi_route(environ, self.monitor.options.route_resolver)
            except Exception as exc:
                _ROUTE.caught(exc)


# PEP 3333 keeps these two out of the HTTP_ namespace.
_UNPREFIXED = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


def _header(environ: dict[str, Any], name: str) -> str | None:
    key = name.upper().replace("-", "_")
    return environ.get(key if key in _UNPREFIXED else "HTTP_" + key)


def _close_with(body: Any, ctx: MonaContext, monitor: WebMonitor) -> bool:
    """Make closing the server's ``wsgi.file_wrapper`` close the context; False if it cannot.

    Wrapping it would hide it from the server, which only uses ``sendfile()`` for an
    instance of its own wrapper type (gunicorn, wsgiref...). Their wrappers take ``close``
    from the file as an instance attribute, so ours can take its place.
    """
    original = getattr(body, "close", None)

    def close() -> None:
        try:
            if original is not None:
                original()
        finally:
            monitor.finish(ctx)

    try:
        body.close = close
    except (AttributeError, TypeError):  # __slots__ or a read-only close: wrap after all
        return False
    return True


class _ClosingBody:
    """The app's iterable, passed through; closing it closes the request's context."""

    __slots__ = ("_body", "_ctx", "_monitor")

    def __init__(self, body: Iterable[bytes], ctx: MonaContext, monitor: WebMonitor) -> None:
        self._body = body
        self._ctx = ctx
        self._monitor = monitor

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except GeneratorExit:  # the consumer stopped early; close() will follow
            raise
        except BaseException as exc:  # a streaming view failed mid-body: the response is over
            self._ctx.request.exception = exc
            self._monitor.finish(self._ctx)
            raise
        # Fully iterated is fully sent; test clients that never call close() see it too.
        self._monitor.finish(self._ctx)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._monitor.finish(self._ctx)
