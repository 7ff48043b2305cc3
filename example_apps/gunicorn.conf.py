"""gunicorn settings for any app using mona_middleware.

    gunicorn -c example_apps/gunicorn.conf.py example_apps.flask_app:app

Nothing here is required: workers flush from ``atexit`` when gunicorn stops them, and a
forked worker starts its own exporter. The hooks make both explicit and bounded.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
graceful_timeout = 30


def post_fork(server, worker):
    # A worker forked from a --preload master must not reuse the master's exporter
    # threads or sockets; mona_middleware resets itself in the child (os.register_at_fork),
    # this only says so in the log.
    server.log.debug("worker %s: mona_middleware exporter starts on first request", worker.pid)


def worker_exit(server, worker):
    # Send what this worker still holds before it exits, within MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT.
    import mona_middleware

    mona_middleware.shutdown()
