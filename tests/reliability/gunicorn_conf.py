"""gunicorn settings for the fault test: each worker writes its final stats at exit."""

from tests.reliability import exit_stats

graceful_timeout = 20


def worker_exit(server, worker):
    # Runs in the worker once it stopped serving: shut the exporter down (bounded by
    # MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT) and leave this worker's ledger for the test.
    exit_stats.write_final("gunicorn")
