"""The Celery app the worker tests run under a real ``celery worker`` (and queue to).

Its broker is Celery's filesystem transport in the folder ``CELERY_TEST_BROKER`` names,
so the tests need no broker server and always run; or a real Redis when
``CELERY_TEST_BROKER_URL`` is set (Debian's ``redis-server``, started by the tests).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

import mona_middleware as mona
from mona_middleware.celery import MonaCelery


def _ran(name: str, n: int) -> None:
    """Leave a mark that the task ran (the threads-pool test waits for them)."""
    done = os.environ.get("CELERY_TEST_DONE")
    if done:
        Path(done, f"{name}-{n}").touch()


def make_app(folder: str, broker_url: str | None = None) -> Celery:
    """A producer or worker app on ``broker_url``, else on the folder ``folder``."""
    if broker_url:
        broker = {"broker_url": broker_url}
    else:
        for name in ("queue", "processed", "control"):
            (Path(folder) / name).mkdir(parents=True, exist_ok=True)
        broker = {
            "broker_url": "filesystem://",
            "broker_transport_options": {
                "data_folder_in": os.path.join(folder, "queue"),
                "data_folder_out": os.path.join(folder, "queue"),
                "processed_folder": os.path.join(folder, "processed"),
                "control_folder": os.path.join(folder, "control"),  # not the cwd's
                "store_processed": False,
                "polling_interval": 0.1,
            },
        }
    app = Celery("work")
    app.conf.update(
        **broker,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_prefetch_multiplier=1,
        task_acks_late=False,
    )
    MonaCelery(app)

    @app.task(name="work.score")
    @mona.monitor("SCORED")
    def score(n: int) -> int:
        mona.export({"n": n, "score": n / 10})
        _ran("score", n)
        return n

    @app.task(name="work.follow_up")
    def follow_up(n: int) -> int:
        mona.export({"followed_up": n})
        return n

    @app.task(name="work.backfill")
    def backfill(count: int) -> int:
        """A backfill inside a task: one context per row, as fast as they open."""
        for n in range(count):
            with mona.context("BACKFILL", context_id=f"row-{n}"):
                mona.export({"row": n})
        _ran("backfill", count)
        return count

    @app.task(name="work.fail")
    def fail(n: int) -> None:
        mona.export({"failing": n})
        _ran("fail", n)
        raise ValueError(f"row {n} is bad")

    return app


if os.environ.get("CELERY_TEST_BROKER"):
    app = make_app(os.environ["CELERY_TEST_BROKER"], os.environ.get("CELERY_TEST_BROKER_URL"))
