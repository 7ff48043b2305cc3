"""Flask: ``MonaFlask(app)`` or ``MonaFlask()`` + ``init_app(app)``.

Wraps ``app.wsgi_app`` and adds the route template from Flask's URL rule and the
exception Flask turned into a 500. A response Flask holds whole closes the request's
context as ``wsgi_app`` returns (after teardown), as OpenTelemetry and Sentry end
theirs; a streamed one when its last chunk is sent. An error page Flask renders from an
``HTTPException`` (404, 405, 400, ``abort()``) is whole too, though werkzeug builds it
as a WSGI app's body.
Options come from arguments, then ``app.config["MONA_<OPTION>"]``, then the environment.

The app holds the only strong reference of the pair: the middleware calls Flask's
``wsgi_app`` function with a weak reference to the app, so an app nobody holds any
more is freed at once (no cycle waiting for the garbage collector).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

try:
    import flask
except ImportError as exc:  # pragma: no cover - exercised by the tox core env
    raise ImportError(
        "mona_middleware.flask needs Flask: pip install 'mona_middleware[flask]'"
    ) from exc

from ._api.context import current_var
from ._api.tracing import TRACE_MODULE, current_trace_id
from ._util.log import Guard
from ._util.options import unknown_options
from ._web.options import ALL_OPTIONS, options_from_prefixed
from ._web.recorder import RequestState, WebRecorder
from .errors import MonaConfigError
from .wsgi import MonaWSGIMiddleware

__all__ = ["MonaFlask"]

_HOOK = Guard("could not read Flask's route or response for the request's context")


class MonaFlask:
    """The Flask extension: one Mona context per request.

    >>> app = flask.Flask("shop")
    >>> mona = MonaFlask(app, context_class="SHOP_API", handle_sigterm=False)
    >>> app.extensions["mona"] is mona.recorder(app)
    True
    """

    def __init__(self, app: flask.Flask | None = None, **options: Any) -> None:
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        options = {**config_options(app.config), **self._options}
        middleware = MonaWSGIMiddleware(_weak_wsgi_app(app), **options)
        middleware.status_known = True  # read from the response (_note_responses)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.extensions["mona"] = middleware.recorder
        _note_responses(app)
        _note_exceptions(app)
        _note_error_pages(app)

    @staticmethod
    def recorder(app: flask.Flask) -> WebRecorder:
        """The ``WebRecorder`` serving ``app`` (state lives on the app, not on this object)."""
        recorder: WebRecorder = app.extensions["mona"]
        return recorder

    monitor = recorder  # its name before 0.2 ("monitor" is the decorator's word now)


def config_options(config: Any) -> dict[str, Any]:
    """The options in ``app.config`` (``MONA_<OPTION>``).

    Any other ``MONA_`` key is a typo that would otherwise be ignored without a word
    (``MONA_CONTEXT_CLAS``, and the class quietly stays ``HTTP_REQUEST``): it raises
    ``MonaConfigError`` naming the closest key, as an unknown keyword option does.

    """
    keys = {"MONA_" + name.upper() for name in ALL_OPTIONS}
    try:
        unknown = [key for key in config if isinstance(key, str) and key.startswith("MONA_")]
        unknown = [key for key in unknown if key not in keys]
        if unknown:
            raise MonaConfigError(unknown_options(unknown, keys, "app.config key"))
        return options_from_prefixed(config)
    except MonaConfigError:
        raise
    except Exception as exc:  # a config whose own methods raise: found at start-up
        raise MonaConfigError(
            f"app.config could not be read for MONA_ options: {type(exc).__name__} raised"
        ) from None


class _WeakWSGIApp:
    """``app.wsgi_app`` as Flask's function and a weak reference to the app.

    The bound method would make a cycle (app -> middleware -> bound method -> app) that
    keeps every app, and all it holds, until a full garbage collection.
    """

    __slots__ = ("_app", "_function")

    def __init__(self, function: Any, app: flask.Flask) -> None:
        self._function = function
        self._app = weakref.ref(app)

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self._function(self._app(), environ, start_response)


def _weak_wsgi_app(app: flask.Flask) -> Any:
    """What the middleware wraps: the app's own ``wsgi_app`` without the cycle; any other
    callable an earlier middleware put there (``ProxyFix``) is wrapped as it is."""
    current = app.wsgi_app
    function = getattr(current, "__func__", None)
    if getattr(current, "__self__", None) is app and function is not None:
        return _WeakWSGIApp(function, app)
    return current


def _note_error_pages(app: flask.Flask) -> None:
    """Mark the request whose response is an ``HTTPException``'s own page as whole.

    Flask renders one (a 404, 405, 400, ``abort()``, a routing redirect) by running the
    exception as a WSGI app, so the response looks streamed, and closing its context
    would wait for a server or test client to close a body it may never read. Flask's
    own method runs unchanged (the class's, with a weak reference to the app: no cycle);
    only when it returns the exception itself (no handler of the user's answered) is
    the page known to be whole.
    """
    handle = type(app).handle_http_exception
    # Never None when called (typed so): the app holds the method that calls it.
    app_ref: Callable[[], flask.Flask] = weakref.ref(app)  # type: ignore[assignment]

    def handle_http_exception(e: Any) -> Any:
        answer = handle(app_ref(), e)  # Flask's, and its exceptions, as without us
        if answer is e:
            ctx = current_var.get()
            state = None if ctx is None else ctx.request
            if isinstance(state, RequestState):
                state.whole = True
        return answer

    app.handle_http_exception = handle_http_exception  # type: ignore[method-assign]


def _note_responses(app: flask.Flask) -> None:
    """Read what only Flask knows of the response as it finishes building it.

    Flask's own ``process_response`` runs first (the user's ``after_request`` hooks
    among it), unchanged; then whether the body is whole (the context then closes as
    ``wsgi_app`` returns, not when a server or test client closes the body) and, with
    OpenTelemetry, the trace id (Flask's span ends before the response is sent). A
    method on the app, not an ``after_request`` hook: Flask checks every hook for a
    coroutine function on every request (six calls), and a teardown hook as well.
    """
    process = type(app).process_response
    # Never None when called (typed so): the app holds the method that calls it.
    app_ref: Callable[[], flask.Flask] = weakref.ref(app)  # type: ignore[assignment]
    modules = sys.modules

    def process_response(response: flask.Response) -> flask.Response:
        response = process(app_ref(), response)  # Flask's, and its exceptions, as without us
        ctx = current_var.get()
        state = None if ctx is None else ctx.request
        if type(state) is RequestState:
            try:  # a guarded site (see Guard): try is free until it raises
                state.status = response.status_code
                rule = flask.request.url_rule  # matched before any hook ran
                if rule is not None:
                    state.route = rule.rule
                if not response.is_streamed:
                    state.whole = True
                if state.trace_id is None and TRACE_MODULE in modules:
                    state.trace_id = current_trace_id()
            except Exception as exc:
                _HOOK.caught(exc)
        return response

    app.process_response = process_response  # type: ignore[method-assign]


def _note_exceptions(app: flask.Flask) -> None:
    """The exception Flask turns into a 500 page (``handle_exception``, only on errors):
    recorded as ``exception_type``, the page whole; one it lets propagate (testing,
    ``PROPAGATE_EXCEPTIONS``), the middleware sees itself."""
    handle = type(app).handle_exception
    # Never None when called (typed so): the app holds the method that calls it.
    app_ref: Callable[[], flask.Flask] = weakref.ref(app)  # type: ignore[assignment]

    def handle_exception(e: Exception) -> Any:
        ctx = current_var.get()
        state = None if ctx is None else ctx.request
        if isinstance(state, RequestState):
            state.exception = e
            state.whole = True  # Flask's 500 page, built from an exception: whole
            try:  # the route now: a propagating exception skips process_response
                rule = flask.request.url_rule
                state.route = None if rule is None else rule.rule
            except Exception as exc:
                _HOOK.caught(exc)
        return handle(app_ref(), e)

    app.handle_exception = handle_exception  # type: ignore[method-assign]
