"""Django Channels: one Mona context per websocket connection, options from ``settings.MONA``.

    # asgi.py
    application = ProtocolTypeRouter({
        "http": mona_middleware.django.asgi_application(),
        "websocket": mona_middleware.django.websocket_application(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    })

The connection's context opens before the consumer's ``connect`` and closes when the
consumer is done, so what its handlers export (``async`` ones, and sync ones Channels
runs in a thread) lands in it, with the fields ``MonaASGIMiddleware`` records for any
ASGI websocket. ``http_route`` is the matched ``path()``/``re_path()`` patterns of the
``URLRouter`` (nested ones joined): ``/ws/chat/<str:room>/``. Channels itself is not
imported here: the router is recognised by its shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._api.context import current_context
from .._util.log import Guard
from ..asgi import ASGIApp, MonaASGIMiddleware, Receive, Scope, Send
from .conf import build_recorder

if TYPE_CHECKING:
    from .._web.recorder import WebContext

__all__ = ["channels_route", "websocket_application"]

_ROUTE = Guard("could not read the websocket's Channels route")


def websocket_application(app: ASGIApp) -> MonaASGIMiddleware:
    """``app`` (Channels' websocket application) with one context per connection."""
    router = _router(app)
    inner = app if router is None else _RouteRecorder(app, router)
    return MonaASGIMiddleware.with_recorder(inner, build_recorder())


def channels_route(router: Any, path: str) -> str | None:
    """The template of the ``URLRouter`` route ``path`` matches, through nested routers.

    >>> from channels.routing import URLRouter  # doctest: +SKIP
    >>> from django.urls import path  # doctest: +SKIP
    >>> router = URLRouter([path("ws/chat/<str:room>/", None)])  # doctest: +SKIP
    >>> channels_route(router, "/ws/chat/lobby/")  # doctest: +SKIP
    '/ws/chat/<str:room>/'
    """
    remaining, parts = path.lstrip("/"), []
    while router is not None:
        for route in router.routes:
            try:
                match = route.pattern.match(remaining)
            except Exception:  # Channels treats a Resolver404 here as "not this route"
                match = None
            if match:
                remaining = match[0]
                parts.append(str(route.pattern))
                router = _router(route.callback)
                break
        else:
            return None
        if router is None:  # as Django's own route templates: a regex keeps its "^"
            template = "".join(parts)
            return template if template.startswith(("/", "^")) else "/" + template
    return None


def _router(app: Any) -> Any:
    """The ``URLRouter`` under Channels' middlewares (``inner``, ``application``), if any."""
    for _ in range(32):  # a bounded walk down the middleware chain
        if getattr(app, "_path_routing", False) and hasattr(app, "routes"):
            return app
        app = getattr(app, "inner", None) or getattr(app, "application", None)
        if app is None:
            return None
    return None


class _RouteRecorder:
    """Sets the connection's route before the router runs, from the path as it arrived."""

    def __init__(self, app: ASGIApp, router: Any) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The connection's own context (MonaASGIMiddleware opened it just before).
        ctx: WebContext | None = current_context()  # type: ignore[assignment]
        if ctx is not None and ctx.request is not None:
            try:
                path = scope.get("path", "")
                root = scope.get("root_path", "")
                if root and path.startswith(root):
                    path = path[len(root) :]
                ctx.request.route = channels_route(self.router, path)
            except Exception as exc:
                _ROUTE.caught(exc)
        await self.app(scope, receive, send)
