"""Flask: ``MonaFlask(app)`` or ``MonaFlask()`` + ``init_app(app)``.

Wraps ``app.wsgi_app`` and adds the route template from Flask's URL rule and the
exception Flask turned into a 500. A response Flask holds whole closes the request's
context at teardown, as OpenTelemetry and Sentry end theirs; a streamed one when its
last chunk is sent. Options come from arguments, then ``app.config["MONA_<OPTION>"]``,
then the environment.
"""

from __future__ import annotations

from typing import Any

try:
    import flask
except ImportError as exc:  # pragma: no cover - exercised by the tox core env
    raise ImportError(
        "mona_middleware.flask needs Flask: pip install 'mona_middleware[flask]'"
    ) from exc

from .context import current_context
from .web import WebMonitor, options_from_prefixed
from .wsgi import MonaWSGIMiddleware

__all__ = ["MonaFlask"]


class MonaFlask:
    """The Flask extension: one Mona context per request.

    >>> app = flask.Flask("shop")
    >>> mona = MonaFlask(app, context_class="SHOP_API", handle_sigterm=False)
    >>> app.extensions["mona"] is mona.monitor(app)
    True
    """

    def __init__(self, app: flask.Flask | None = None, **options: Any) -> None:
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        options = {**options_from_prefixed(app.config), **self._options}
        middleware = MonaWSGIMiddleware(app.wsgi_app, **options)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.extensions["mona"] = middleware.monitor
        app.before_request(_record_route)
        app.after_request(_note_whole_body)
        app.teardown_request(_teardown)

    @staticmethod
    def monitor(app: flask.Flask) -> WebMonitor:
        """The ``WebMonitor`` serving ``app`` (state lives on the app, not on this object)."""
        return app.extensions["mona"]


def _record_route() -> None:
    ctx = current_context()
    rule = flask.request.url_rule
    if ctx is not None and ctx.request is not None and rule is not None:
        ctx.request.route = rule.rule


def _note_whole_body(response: flask.Response) -> flask.Response:
    if not response.is_streamed:
        flask.g._mona_whole_body = True
    return response


def _teardown(exc: BaseException | None) -> None:
    ctx = current_context()
    if ctx is None or ctx.request is None:
        return
    if exc is not None:
        ctx.request.exception = exc
    # An error page is never a stream the user is still sending (werkzeug calls it
    # "streamed" only because it was converted from an exception).
    if flask.g.pop("_mona_whole_body", False) or exc is not None:
        # The body is built; closing now (not when the server closes it) also serves
        # test clients that never read or close the response.
        flask.current_app.extensions["mona"].finish(ctx)
