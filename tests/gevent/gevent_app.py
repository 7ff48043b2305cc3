"""A Flask app for ``gunicorn -k gevent``: each request fans out to greenlets that export.

``mona_middleware.gevent.patch()`` at import is the one line a gevent deployment adds.
"""

from __future__ import annotations

import gevent
from flask import Flask

import mona_middleware as mona
import mona_middleware.gevent
from mona_middleware.flask import MonaFlask

mona_middleware.gevent.patch()

app = Flask(__name__)
MonaFlask(app, context_class="GEVENT_API", excluded_urls=["^/health$"])


def part(n: int, i: int) -> bool:
    gevent.sleep(0.01 * (3 - i))  # yields: the requests' greenlets interleave
    return mona.export({f"part_{i}": n * 10 + i})


@app.get("/fanout/<int:n>")
def fanout(n: int) -> str:
    mona.export({"n": n})
    jobs = [gevent.spawn(part, n, i) for i in range(3)]
    gevent.joinall(jobs, timeout=10)
    return ",".join(str(job.value) for job in jobs)


@app.get("/health")
def health() -> str:
    return "ok"
