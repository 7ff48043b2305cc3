"""Settings of the Django example: a model-serving API monitored by mona_middleware.

Without MONA_SDK_* credentials in the environment the messages go to
./mona-messages.jsonl; with them, to Mona. Options in ``MONA`` win over the environment.
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["mona_middleware.django"]  # optional: system checks (manage.py check)
MIDDLEWARE = ["mona_middleware.django.MonaMiddleware"]  # first, so it sees every request
ROOT_URLCONF = "example_apps.django_app.urls"
WSGI_APPLICATION = "example_apps.django_app.wsgi.application"
DATABASES: dict = {}  # a model-serving API without a database
USE_TZ = True

MONA = {
    "context_class": "RECOMMENDATIONS",
    "excluded_urls": ["^/health$"],
    "capture_headers": ["User-Agent", "Authorization"],  # Authorization is sent redacted
}
