"""Django's ``asgi.py`` as ``startproject`` writes it, for the example project's settings
(``MonaMiddleware`` in ``MIDDLEWARE`` is the only thing a user did for monitoring)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_apps.django_app.settings")

application = get_asgi_application()
