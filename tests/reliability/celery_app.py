"""The Celery app of the fault test: ``reliable.work(uid)`` records the uid in its task's
context, leaves a mark that it ran (the test's book of answered tasks), and each
process writes its final stats when it exits: prefork children on
``worker_process_shutdown`` (they leave with ``os._exit``), the main on ``worker_shutdown``.

Broker and MonaCelery come from ``tests.celery.worker_app`` (Redis or the filesystem).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery, signals

import mona_middleware as mona
from tests.celery.worker_app import make_app

from . import exit_stats


def reliable_app(folder: str, broker_url: str | None = None) -> Celery:
    app = make_app(folder, broker_url)

    @app.task(name="reliable.work")
    def work(uid: str) -> str:
        mona.export({"uid": uid, "pid": os.getpid()})
        done = os.environ.get("RELIABILITY_DONE")
        if done:
            Path(done, uid).write_text(str(os.getpid()))
        return uid

    return app


def _track(**kwargs: object) -> None:
    exit_stats.track()  # after MonaCelery's postrun (connected first): the context is queued


def _child_exit(**kwargs: object) -> None:
    exit_stats.write_final("celery-child")


def _main_exit(**kwargs: object) -> None:
    exit_stats.write_final("celery-main")


if os.environ.get("CELERY_TEST_BROKER"):
    app = reliable_app(os.environ["CELERY_TEST_BROKER"], os.environ.get("CELERY_TEST_BROKER_URL"))
    signals.task_postrun.connect(_track, weak=False)
    signals.worker_process_shutdown.connect(_child_exit, weak=False)
    signals.worker_shutdown.connect(_main_exit, weak=False)
