"""The app the gunicorn and uWSGI fault tests serve: one context per request, its id
from the ``x-request-id`` header (so the test knows every id), answering the pid of the
worker that served it (so the test knows which processes must leave a ledger).

``/ready`` is excluded: readiness probes make no context and stay out of the ledger.
"""

from __future__ import annotations

import os

import mona_middleware as mona
from mona_middleware.wsgi import MonaWSGIMiddleware

from . import exit_stats


def view(environ, start_response):
    mona.export({"pid": os.getpid(), "path": environ.get("PATH_INFO", "")})
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


monitored = MonaWSGIMiddleware(
    view,
    context_class="RELIABLE",
    context_id_header="x-request-id",
    excluded_urls=[r"^/ready$"],
)


def application(environ, start_response):
    try:
        return monitored(environ, start_response)
    finally:
        exit_stats.track()  # the body is a list: the context is closed and queued by now


exit_stats.install_uwsgi_atexit()
