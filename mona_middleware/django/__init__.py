"""Django: one Mona context per request, from ``MonaMiddleware`` in ``MIDDLEWARE``.

    # settings.py
    INSTALLED_APPS = [..., "mona_middleware.django"]  # optional: checks settings.MONA at start
    MIDDLEWARE = ["mona_middleware.django.MonaMiddleware", ...]
    MONA = {"context_class": "RECOMMENDATIONS", "excluded_urls": ["^/health$"]}

    # asgi.py: Django's ASGI app, answering lifespan so uvicorn workers flush on stop
    application = mona_middleware.django.asgi_application()

Works under WSGI (gunicorn, runserver) and ASGI (uvicorn, daphne), with sync and async
views and streamed responses; ``@mona_middleware.monitor("CLASS")`` on a view names
that request's context class.
"""

from __future__ import annotations

try:
    import django  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the tox core env
    raise ImportError(
        "mona_middleware.django needs Django: pip install 'mona_middleware[django]'"
    ) from exc

from .asgi import asgi_application
from .middleware import MonaMiddleware
from .websockets import websocket_application

__all__ = ["MonaMiddleware", "asgi_application", "websocket_application"]
