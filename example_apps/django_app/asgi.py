"""ASGI entry point: ``uvicorn example_apps.django_app.asgi:application`` (from the repo root).

``asgi_application()`` is Django's ``get_asgi_application()`` answering the lifespan
protocol, so every worker of ``uvicorn --workers N`` flushes at shutdown.
"""

import os

from mona_middleware.django import asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_apps.django_app.settings")
application = asgi_application()
