"""The optional ``mona_middleware.django`` app: Django's system checks for our settings.

With it, ``manage.py check`` (and ``runserver``, ``migrate``...) report a bad
``settings.MONA``, the middleware's place in ``MIDDLEWARE`` and an ASGI application
without lifespan, as ``mona_middleware.E001``... with hints (see ``checks``). Without it
the middleware still validates when Django builds the middleware chain. It starts
nothing (no exporter, no signal handler): ``ready()`` also runs in runserver's reloader
parent, which must keep SIGTERM's default action.
"""

from __future__ import annotations

from django.apps import AppConfig

from . import checks


class MonaDjangoConfig(AppConfig):  # type: ignore[misc]  # Django: no type information
    """``INSTALLED_APPS = [..., "mona_middleware.django"]``."""

    name = "mona_middleware.django"
    label = "mona_middleware"
    verbose_name = "Mona monitoring"

    def ready(self) -> None:
        checks.register()
