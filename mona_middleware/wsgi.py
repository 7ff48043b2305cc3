"""Any WSGI app: one Mona context per request, closed when the response has been sent.

    app.wsgi_app = MonaWSGIMiddleware(app.wsgi_app, context_class="MY_SERVICE")

Needs nothing but the standard library, so it wraps werkzeug/Flask, Django's WSGI
handler, Falcon or Bottle alike. A WSGI response may stream: the context closes when
the server closes the returned iterable (PEP 3333), not when the app returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .context import MonaContext, _current
from .web import WebMonitor

__all__ = ["MonaWSGIMiddleware"]


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

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        monitor = self.monitor
        ctx = monitor.start(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", ""),
            lambda name: environ.get("HTTP_" + name.upper().replace("-", "_")),
        )
        if ctx is None:  # excluded or off: run without any context a server thread kept
            token = _current.set(None)
            try:
                return self.app(environ, start_response)
            finally:
                _current.reset(token)
        state = ctx.request
        monitor.call_hook(monitor.options.request_hook, ctx, environ)

        def record_status(status: str, headers: list, exc_info: Any = None) -> Any:
            with contextlib.suppress(ValueError, IndexError):
                state.status = int(status.split(None, 1)[0])
            monitor.call_hook(monitor.options.response_hook, ctx, environ, status, headers)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, record_status)
        except BaseException as exc:
            state.exception = exc
            monitor.finish(ctx)
            raise
        return _ClosingBody(body, ctx, monitor)


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
