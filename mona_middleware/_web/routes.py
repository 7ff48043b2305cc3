"""Route templates for every framework behind the plain ASGI and WSGI middlewares.

The middlewares wrap the app, so the route is known only once the app has run: each
framework's template is read then, from what that framework leaves in the ASGI scope or
the WSGI environ, the cheapest way it allows:

=============  ==========================================================================
Starlette      ``scope["route"]`` / ``scope["router"]`` (``starlette_routes``)
FastAPI        the same (it is Starlette)
Litestar       ``scope["path_template"]``, which its router sets next to ``route_handler``
Bottle         ``environ["bottle.route"].rule``
Quart          ``request.url_rule.rule``: Quart keeps it on its request object only, so an
               async ``request_started`` receiver copies it into the request's scope
Falcon         ``req.uri_template``, copied into ``req.env`` / ``req.scope`` by a
               ``process_resource`` component added to the wrapped ``falcon.App``
Pyramid        ``request.matched_route.pattern``, copied into the environ by a
               ``ContextFound`` subscriber registered on the wrapped app's registry
=============  ==========================================================================

Anything else (or an app wrapped in more middleware than the hooks can see through) can
set :data:`ROUTE_KEY` in the scope/environ itself, or give the ``route_resolver`` option.
The raw path is never a substitute: one template per URL would swamp Mona's segments.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from .._util.log import limited
from .hooks import RouteResolver

__all__ = ["ROUTE_KEY", "asgi_route", "prepare_app", "wsgi_route"]

# The scope / environ key a framework hook (or the user's own code) puts the template under.
ROUTE_KEY = "mona_middleware.route"

_starlette_template: Callable[[MutableMapping[str, Any], str, str], str | None] | None = None


def asgi_route(
    scope: MutableMapping[str, Any],
    path: str,
    root_path: str,
    resolver: RouteResolver | None = None,
) -> str | None:
    """The template of the request ``scope`` describes, after the app has run; or None.

    ``path`` and ``root_path`` are the scope's values from before the app ran (Starlette
    rewrites them under a Mount).

    >>> asgi_route({"path_template": "/items/{item_id}", "route_handler": object()}, "/items/1", "")
    '/items/{item_id}'
    """
    if resolver is not None:
        found = _resolved(resolver, scope)
        if found is not None:
            return found
    route = scope.get(ROUTE_KEY)
    if route is not None:
        return route if isinstance(route, str) else None
    if "route_handler" in scope:  # Litestar
        return _litestar(scope)
    if "route" in scope or "router" in scope:  # Starlette, FastAPI
        return _starlette(scope, path, root_path)
    return None


def wsgi_route(
    environ: MutableMapping[str, Any], resolver: RouteResolver | None = None
) -> str | None:
    """The template of the request ``environ`` describes, after the app has run; or None.

    >>> wsgi_route({"mona_middleware.route": "/items/{id}"})
    '/items/{id}'
    """
    if resolver is not None:
        found = _resolved(resolver, environ)
        if found is not None:
            return found
    route = environ.get(ROUTE_KEY)
    if route is not None:
        return route if isinstance(route, str) else None
    bottle_route = environ.get("bottle.route")
    if bottle_route is not None:
        rule = getattr(bottle_route, "rule", None)
        return rule if isinstance(rule, str) else None
    return None


def prepare_app(app: Any) -> None:
    """Install the hooks some frameworks need to reveal their template; never raises.

    Called once by ``MonaASGIMiddleware`` / ``MonaWSGIMiddleware`` with the app they wrap
    (a framework instance or its bound ``asgi_app`` / ``wsgi_app``). Frameworks that are
    not imported yet cost nothing: ``sys.modules`` is only looked at.
    """
    try:
        target = getattr(app, "__self__", app)  # app.asgi_app / app.wsgi_app: the app
        modules = sys.modules
        if "quart" in modules:
            _watch_quart()
        falcon = modules.get("falcon")
        if falcon is not None and isinstance(target, falcon.App):
            _add_falcon_component(target)
        pyramid_router = modules.get("pyramid.router")
        if pyramid_router is not None and isinstance(target, pyramid_router.Router):
            _subscribe_pyramid(target)
    except Exception as exc:  # a framework release we do not know: no template, no failure
        limited(
            logging.WARNING,
            f"routes:{type(exc).__name__}",
            "mona_middleware: no route hook: %r",
            exc,
        )


def _resolved(resolver: RouteResolver, where: Any) -> str | None:
    try:
        found = resolver(where)
    except Exception as exc:
        limited(logging.ERROR, "route_resolver", "mona_middleware: route_resolver raised %r", exc)
        return None
    if found is None or isinstance(found, str):
        return found or None
    limited(
        logging.ERROR,
        "route_resolver:type",
        "mona_middleware: route_resolver must return a str or None, got %s",
        type(found).__name__,
    )
    return None


def _starlette(scope: MutableMapping[str, Any], path: str, root_path: str) -> str | None:
    global _starlette_template
    if _starlette_template is None:  # imported once, on the first routed request
        try:
            from .starlette_routes import route_template
        except ImportError:
            return None
        _starlette_template = route_template
    return _starlette_template(scope, path, root_path)


def _litestar(scope: MutableMapping[str, Any]) -> str | None:
    template = scope.get("path_template")
    if isinstance(template, str) and template:
        return template
    # Litestar before scope["path_template"]: the handler's own path, when it has one.
    paths = getattr(scope.get("route_handler"), "paths", None)
    if paths and len(paths) == 1:
        only = next(iter(paths))
        return only if isinstance(only, str) else None
    return None


# Quart: one process-wide receiver (blinker signals are global), connected once.
_quart_watched = False


def _watch_quart() -> None:
    global _quart_watched
    if _quart_watched:
        return
    from quart import request
    from quart.signals import request_started

    async def note_quart_route(sender: Any, **extra: Any) -> None:
        # Async on purpose: Quart runs a sync receiver in its thread pool.
        rule = request.url_rule
        if rule is not None:
            # our own key in Quart's scope (a TypedDict to the checker, a dict at run time)
            request.scope[ROUTE_KEY] = rule.rule  # type: ignore[literal-required]

    request_started.connect(note_quart_route, weak=False)
    _quart_watched = True


class _FalconRoute:
    """A Falcon middleware component: ``req.uri_template`` into the environ or the scope.

    ``process_resource`` runs right after Falcon's router, only when a route matched.
    """

    def process_resource(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        template = req.uri_template
        if template is not None:
            req.env[ROUTE_KEY] = template

    async def process_resource_async(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        template = req.uri_template
        if template is not None:
            req.scope[ROUTE_KEY] = template


# The apps and registries given their hook already: wrapping an app twice adds it once.
# (Falcon's App has __slots__, so the mark cannot live on the app itself.)
_hooked: list[Any] = []


def _once(target: Any) -> bool:
    """True the first time ``target`` is seen."""
    if any(seen is target for seen in _hooked):
        return False
    _hooked.append(target)
    return True


def _add_falcon_component(app: Any) -> None:
    if _once(app):
        app.add_middleware(_FalconRoute())


def _subscribe_pyramid(router: Any) -> None:
    from pyramid.interfaces import IContextFound

    registry = router.registry
    if not _once(registry):
        return

    def note_pyramid_route(event: Any) -> None:
        request = event.request
        route = getattr(request, "matched_route", None)
        if route is not None:
            pattern = route.pattern
            request.environ[ROUTE_KEY] = pattern if pattern.startswith("/") else "/" + pattern

    registry.registerHandler(note_pyramid_route, (IContextFound,))
