"""``MonaCelery`` in-process: each task run is a context with the task fields (eager runs
go through the same signals as a worker's), headers carry the queuing context."""

from __future__ import annotations

import pytest

celery = pytest.importorskip("celery")

import mona_middleware as mona  # noqa: E402
from mona_middleware.celery import HEADER, MonaCelery  # noqa: E402
from mona_middleware.errors import MonaConfigError  # noqa: E402


def make_app(**options):
    app = celery.Celery("shop", broker="memory://")
    app.conf.task_always_eager = True
    mona_celery = MonaCelery(app, **options)

    @app.task(name="shop.score")
    @mona.monitor("SCORING")
    def score(n):
        mona.export({"n": n})
        return n * 2

    @app.task(name="shop.plain")
    def plain(n):
        mona.export({"n": n})
        return n

    @app.task(name="shop.fail")
    def fail():
        raise ValueError("bad row")

    @app.task(name="shop.flaky", bind=True, max_retries=2, default_retry_delay=0)
    def flaky(self):
        mona.export({"attempt": self.request.retries})
        if self.request.retries < 2:
            raise self.retry(exc=KeyError("later"))
        return "ok"

    return app, mona_celery, {"score": score, "plain": plain, "fail": fail, "flaky": flaky}


def test_a_task_run_is_a_context_with_the_task_fields(mona_capture):
    _, _, tasks = make_app()
    result = tasks["plain"].apply(args=(3,), task_id="t-1")
    assert result.get() == 3
    fields = mona_capture.only("shop.plain")
    assert fields["n"] == 3 and fields["task_name"] == "shop.plain"
    assert fields["task_id"] == "t-1" and fields["retries"] == 0
    assert fields["state"] == "SUCCESS" and fields["duration_ms"] >= 0
    assert "exception_type" not in fields and "parent_context_id" not in fields


def test_monitor_inside_a_task_names_its_context(mona_capture):
    _, _, tasks = make_app()
    for n in range(3):
        tasks["score"].apply(args=(n,))
    found = mona_capture.contexts()
    assert {key[0] for key in found} == {"SCORING"} and len(found) == 3
    assert sorted(fields["n"] for fields in found.values()) == [0, 1, 2]
    assert all(fields["task_name"] == "shop.score" for fields in found.values())


def test_a_failure_records_its_exception_and_state(mona_capture):
    _, _, tasks = make_app()
    tasks["fail"].apply()
    fields = mona_capture.only("shop.fail")
    assert fields["exception_type"] == "ValueError" and fields["state"] == "FAILURE"


def test_each_retry_is_a_run_of_its_own(mona_capture):
    _, _, tasks = make_app()
    assert tasks["flaky"].apply(task_id="f-1").get() == "ok"
    runs = sorted(mona_capture.contexts("shop.flaky").values(), key=lambda f: f["retries"])
    assert [(f["retries"], f["attempt"], f["state"]) for f in runs] == [
        (0, 0, "RETRY"),
        (1, 1, "RETRY"),
        (2, 2, "SUCCESS"),
    ]
    assert [f.get("exception_type") for f in runs] == ["KeyError", "KeyError", None]
    assert {f["task_id"] for f in runs} == {"f-1"}


def test_the_class_option_and_app_conf(mona_capture):
    _, _, tasks = make_app(context_class="JOBS")
    tasks["plain"].apply(args=(1,))
    assert mona_capture.only("JOBS")["task_name"] == "shop.plain"
    mona_capture.clear()
    app = celery.Celery("conf", broker="memory://")
    app.conf.mona_context_class = "FROM_CONF"
    app.conf.mona_excluded_tasks = [r"\.skip$"]
    MonaCelery(app)

    @app.task(name="conf.run")
    def run():
        mona.export({"ran": True})

    @app.task(name="conf.skip")
    def skip():
        mona.export({"ran": True})

    run.apply()
    skip.apply()
    (fields,) = mona_capture.contexts().values()  # conf.skip is excluded
    assert mona_capture.only("FROM_CONF") == fields and fields["task_name"] == "conf.run"


def test_a_bad_option_names_itself():
    with pytest.raises(MonaConfigError, match="contxt_class"):
        MonaCelery(celery.Celery("x"), contxt_class="A")
    with pytest.raises(MonaConfigError, match="continue_context"):
        MonaCelery(celery.Celery("x"), continue_context="maybe")


def test_a_task_queued_in_a_context_records_its_parent(mona_capture):
    _, _, tasks = make_app()
    with mona.context("CHECKOUT", context_id="req-7"):
        mona.export({"cart": 2})
        tasks["plain"].apply_async(
            args=(5,), headers={HEADER: {"class": "CHECKOUT", "id": "req-7"}}
        )
    found = mona_capture.contexts()
    assert found[("CHECKOUT", "req-7")] == {"cart": 2}
    (task_key,) = [key for key in found if key[0] == "shop.plain"]
    assert found[task_key]["parent_context_id"] == "req-7"


def test_continue_context_exports_into_the_queuing_context(mona_capture):
    _, _, tasks = make_app(continue_context=True)
    with mona.context("CHECKOUT", context_id="req-8"):
        mona.export({"cart": 2})
    tasks["score"].apply(args=(4,), headers={HEADER: {"class": "CHECKOUT", "id": "req-8"}})
    fields = mona_capture.only("CHECKOUT")
    assert fields["cart"] == 2 and fields["n"] == 4  # @monitor did not rename it
    assert fields["task_name"] == "shop.score" and fields["task_state"] == "SUCCESS"
    assert "duration_ms" not in fields and fields["task_duration_ms"] >= 0
    assert list(mona_capture.contexts()) == [("CHECKOUT", "req-8")]


def test_publishing_inside_a_context_adds_the_header(mona_capture):
    app = celery.Celery("pub", broker="memory://")
    MonaCelery(app)
    seen = []

    @celery.signals.before_task_publish.connect(weak=False)
    def look(headers=None, **kwargs):
        seen.append(dict(headers or {}).get(HEADER))

    try:
        with mona.context("CHECKOUT", context_id="req-9"):
            app.send_task("pub.anything")
        app.send_task("pub.anything")
    finally:
        celery.signals.before_task_publish.disconnect(look)
    assert seen == [{"class": "CHECKOUT", "id": "req-9"}, None]


def test_malformed_headers_are_ignored(mona_capture):
    _, _, tasks = make_app()
    tasks["plain"].apply(args=(1,), headers={HEADER: {"class": 3, "id": None}})
    assert "parent_context_id" not in mona_capture.only("shop.plain")


def test_check_knows_and_validates_the_task_variables():
    from mona_middleware._cli.check import check

    report = check({"MONA_MIDDLEWARE_CONTINUE_CONTEXT": "true", "MONA_DISABLE_ALL": "1"})
    assert not any("CONTINUE_CONTEXT" in warning for warning in report.warnings)
    report = check({"MONA_MIDDLEWARE_CONTINUE_CONTEXT": "maybe"})
    assert report.status == 2 and "MONA_MIDDLEWARE_CONTINUE_CONTEXT" in report.problem


def test_a_sampled_out_context_still_travels_so_its_task_agrees(mona_capture):
    mona.configure(sampling_rate=0.5)
    app = celery.Celery("pub", broker="memory://")
    MonaCelery(app)
    seen = []

    @celery.signals.before_task_publish.connect(weak=False)
    def look(headers=None, **kwargs):
        seen.append(dict(headers or {}).get(HEADER))

    try:
        for n in range(40):
            with mona.context("CHECKOUT", context_id=f"req-{n}"):
                app.send_task("pub.anything")
        with mona.context("", context_id="invalid"):  # refused: nothing to carry
            app.send_task("pub.anything")
    finally:
        celery.signals.before_task_publish.disconnect(look)
    assert [h and h["id"] for h in seen] == [f"req-{n}" for n in range(40)] + [None]


def test_exporter_options_come_from_app_conf_too(mona_capture):
    from mona_middleware._runtime import process

    app = celery.Celery("conf", broker="memory://")
    app.conf.mona_shutdown_timeout = 3
    app.conf.MONA_CONTEXT_CLASS = "SHOP_API"  # a Flask app's request class: not the tasks'
    mona_celery = MonaCelery(app)
    app.conf.task_always_eager = True

    @app.task(name="conf.job")
    def job():
        mona.export({"ran": True})

    job.apply()
    assert process.config().shutdown_timeout == 3
    assert mona_celery.options.context_class is None
    assert mona_capture.only("conf.job")["ran"] is True


def test_a_task_that_queues_another_carries_its_own_context(mona_capture):
    app = celery.Celery("chain", broker="memory://")
    MonaCelery(app)
    seen = []

    @app.task(name="chain.first")
    def first():
        mona.export({"step": 1})
        app.send_task("chain.second")  # published to the broker, not run here

    @celery.signals.before_task_publish.connect(weak=False)
    def look(headers=None, **kwargs):
        seen.append(dict(headers or {}).get(HEADER))

    try:
        first.apply()
    finally:
        celery.signals.before_task_publish.disconnect(look)
    ((key, fields),) = mona_capture.contexts().items()
    assert seen == [{"class": "chain.first", "id": key[1]}] and fields["step"] == 1
