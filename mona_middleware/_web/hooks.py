"""The user's hooks, by name: what each is called with and what it may return.

Declared once, here (as OpenTelemetry's instrumentations do in their ``types.py``), and
used at the option declarations (``WebOptions``) and where the adapters call them. A
hook's return value is ignored, so any callable of the right arguments fits (``object``).
``before_send`` runs on the exporter's thread, which knows nothing of the web layer, so
its type is the exporter's own (``BeforeSend``); ``error_handler`` is ``config``'s.

``MonaContext`` is named, not imported: the options (and so ``mona-middleware check``)
are read without loading the exporter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from .._export.items import BeforeSend

if TYPE_CHECKING:
    from .._api.context import MonaContext

__all__ = [
    "ASGIResponseHook",
    "BeforeSend",
    "RequestHook",
    "RequestResponseHook",
    "ResponseHook",
    "RouteResolver",
    "WSGIResponseHook",
]

# ``request_hook(ctx, environ | scope | request)``, when the request's context opens: the
# WSGI environ, the ASGI scope (websocket connections too), Django's or aiohttp's request.
RequestHook = Callable[["MonaContext", Any], object]

# ``response_hook``: its arguments depend on the adapter (below). The option is one for
# all adapters, so it is declared with any arguments; each adapter calls its own kind.
ResponseHook = Callable[..., object]
# WSGI ``(ctx, environ, status line, headers)``: what the app gave ``start_response``.
WSGIResponseHook = Callable[["MonaContext", dict[str, Any], str, list[tuple[str, str]]], object]
# ASGI ``(ctx, scope, status code, headers)``: from ``http.response.start``, the headers
# as the app sent them (None when it left them out).
ASGIResponseHook = Callable[
    ["MonaContext", MutableMapping[str, Any], int, Iterable[tuple[bytes, bytes]] | None], object
]
# Django and aiohttp ``(ctx, request, response)``: the framework's own objects.
RequestResponseHook = Callable[["MonaContext", Any, Any], object]

# ``route_resolver(scope or environ) -> template or None``, after the app ran: the route
# template where the framework offers none (the plain ASGI and WSGI middlewares).
RouteResolver = Callable[[Any], str | None]
