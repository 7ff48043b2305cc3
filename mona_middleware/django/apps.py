"""The optional ``mona_middleware.django`` app: a bad ``settings.MONA`` fails at start-up.

Without it the middleware still validates when Django builds the middleware chain; with
it, ``manage.py check``, ``migrate`` and every other command fail early too. It starts
nothing (no exporter, no signal handler): ``ready()`` also runs in runserver's reloader
parent, which must keep SIGTERM's default action.
"""

from __future__ import annotations

from django.apps import AppConfig

from .conf import check_settings


class MonaDjangoConfig(AppConfig):
    """``INSTALLED_APPS = [..., "mona_middleware.django"]``."""

    name = "mona_middleware.django"
    label = "mona_middleware"
    verbose_name = "Mona monitoring"

    def ready(self) -> None:
        check_settings()
