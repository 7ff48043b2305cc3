"""Route templates for Starlette and FastAPI requests, read after the router has run.

``MonaASGIMiddleware`` calls :func:`route_template` when the request is over; nothing
here needs to be installed by hand. Why it is more than ``scope["route"].path``:

- Starlette 1.x's ``Router`` and FastAPI's ``APIRoute`` leave the matched route in
  ``scope["route"]``; older Starlette leaves only ``scope["endpoint"]``.
- A ``Mount`` rewrites ``scope["root_path"]`` with the *concrete* prefix
  (``/tenants/acme``), so the innermost route alone loses the prefix, and the concrete
  prefix would make one template per tenant.

So when a Mount was crossed (or no route is in the scope), the router's choice is
retraced from ``scope["router"]`` by matching its routes against the request as it
arrived, the way OpenTelemetry's Starlette instrumentation matches ``app.routes``, but
descending through Mounts: ``/tenants/{tenant}/items/{item_id}``. Templates are the
routes' ``path`` as declared (converters included, like Flask's rules); a server's own
``root_path`` (``uvicorn --root-path``) is not part of them.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

try:
    from starlette.routing import Host, Match, Mount
except ImportError as exc:  # pragma: no cover - only without starlette installed
    raise ImportError(
        "mona_middleware's Starlette route templates need Starlette:"
        " pip install 'mona_middleware[starlette]'"
    ) from exc

__all__ = ["route_template"]

_CONTAINERS = (Mount, Host)


def route_template(scope: MutableMapping[str, Any], path: str, root_path: str) -> str | None:
    """The matched route's template with its Mount prefixes; None when nothing matched.

    ``path`` and ``root_path`` are the scope's values from before the app ran (older
    routers rewrite them). Never raises.

    >>> from starlette.routing import Route
    >>> route = Route("/items/{item_id:int}", lambda request: None)
    >>> route_template({"route": route, "root_path": ""}, "/items/3", "")
    '/items/{item_id:int}'
    """
    try:
        leaf = scope.get("route")
        mounted = scope.get("root_path", "") != root_path
        if leaf is not None and not mounted and not isinstance(leaf, _CONTAINERS):
            return _own_path(leaf)
        return _retraced(scope, leaf, path, root_path)
    except Exception:  # a router we do not know: no template rather than a broken request
        return None


def _retraced(scope: MutableMapping[str, Any], leaf: Any, path: str, root_path: str) -> str | None:
    routes = getattr(scope.get("router") or scope.get("app"), "routes", None)
    prefix, found, probe = "", None, {}
    if routes:
        probe = {**scope, "path": path, "root_path": root_path, "path_params": {}}
        prefix, found, probe = _retrace(routes, probe)
    if leaf is None or isinstance(leaf, _CONTAINERS):
        leaf = found
    if leaf is None:
        return None  # 404, also inside a mounted router
    final_root = scope.get("root_path", "")
    if probe.get("root_path", "") != final_root:
        # Our retrace disagrees with the router (a middleware rewrote the scope...):
        # the concrete prefix is still better than none.
        prefix = final_root[len(root_path) :] if final_root.startswith(root_path) else ""
    if isinstance(leaf, _CONTAINERS):  # a mounted app that is not a router: StaticFiles...
        return prefix or "/"
    own = _own_path(leaf)
    return None if own is None else prefix + own


def _retrace(routes: Iterable[Any], probe: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """Follow the router's choices down through Mounts and Hosts: (prefix, leaf, scope)."""
    prefix = ""
    while True:
        chosen, child = _choose(routes, probe)
        if chosen is None:
            return prefix, None, probe
        probe = {**probe, **child}
        if isinstance(chosen, Mount):
            prefix += chosen.path
        if not isinstance(chosen, _CONTAINERS):
            return prefix, chosen, probe
        routes = chosen.routes
        if not routes:
            return prefix, chosen, probe


def _choose(routes: Iterable[Any], probe: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """What ``Router`` picks: the first full match, else the first partial one (a 405)."""
    partial: tuple[Any, dict[str, Any]] = (None, {})
    for route in routes:
        try:
            match, child = route.matches(probe)
        except Exception:
            continue
        if match is Match.FULL:
            return route, child
        if match is Match.PARTIAL and partial[0] is None:
            partial = (route, child)
    return partial


def _own_path(route: Any) -> str | None:
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None
