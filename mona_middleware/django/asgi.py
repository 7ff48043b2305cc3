"""Django's ASGI application with the lifespan protocol answered, so workers flush on stop.

Django's ASGI handler refuses lifespan. That is harmless under a single ``uvicorn``
process, whose SIGTERM ends in ``atexit``; but ``uvicorn --workers N`` (and
``gunicorn --preload`` with uvicorn workers) load the app where the server owns SIGTERM,
and uvicorn re-raises it once stopped, so each worker dies without ``atexit`` and loses
what it held. The lifespan shutdown is then the moment to flush.
"""

from __future__ import annotations

from typing import Any

from ..asgi import MonaLifespan

__all__ = ["asgi_application"]


def asgi_application() -> Any:
    """``get_asgi_application()`` answering lifespan and flushing at ``lifespan.shutdown``.

    Use it in place of Django's in ``asgi.py``; as there, set the settings module first::

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
        from mona_middleware.django import asgi_application

        application = asgi_application()

    Keep the server's lifespan on (uvicorn's default ``auto``). HTTP and websocket scopes
    go to Django unchanged; ``MonaMiddleware`` in ``MIDDLEWARE`` still does the monitoring.
    """
    from django.core.asgi import get_asgi_application

    return MonaLifespan(get_asgi_application())
