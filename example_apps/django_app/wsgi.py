"""WSGI entry point: ``gunicorn example_apps.django_app.wsgi:application`` (from the repo root)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_apps.django_app.settings")
application = get_wsgi_application()
