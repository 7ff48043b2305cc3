"""Django's system checks for ``settings.MONA``, the middleware's place and ASGI lifespan,
run as ``manage.py check`` runs them (``call_command("check")``), ids and hints included."""

from __future__ import annotations

import asyncio
import io
import logging
import textwrap

import pytest

pytest.importorskip("django")

from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import AsyncClient, override_settings

import mona_middleware.asgi as mona_asgi
import mona_middleware.django.middleware as mona_middleware
from mona_middleware.django import asgi_application

from .conftest import BASE_MONA, MONA_MIDDLEWARE
from .helpers import get

COMMON = "django.middleware.common.CommonMiddleware"


@pytest.fixture(autouse=True)
def installed():
    """The app installed (its ready() registers the checks), the middleware first."""
    with override_settings(
        INSTALLED_APPS=["mona_middleware.django"], MIDDLEWARE=[MONA_MIDDLEWARE, COMMON]
    ):
        yield


def check() -> str:
    """``manage.py check``: what it printed (warnings go to stderr); raises on an error."""
    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_a_good_configuration_passes_silently():
    with override_settings(MONA={**BASE_MONA, "context_class": "OK", "batch_size": 10}):
        assert "mona_middleware" not in check()


@pytest.mark.parametrize(
    ("mona", "found"),
    [
        (["context_class"], ["mona_middleware.E001", "must be a dict", 'MONA = {"context_class"']),
        ({"context_klass": "X"}, ["mona_middleware.E002", "'context_klass'", '"context_class"?']),
        ({"excluded_urls": ["("]}, ["mona_middleware.E003", "excluded_urls", "HINT: excluded"]),
        ({"request_hook": "no"}, ["mona_middleware.E003", "request_hook", "must be callable"]),
        ({"batch_size": "many"}, ["mona_middleware.E004", "batch_size", "mona-middleware check"]),
    ],
)
def test_a_bad_setting_is_a_check_error_with_its_id_and_a_hint(mona, found):
    with override_settings(MONA=mona), pytest.raises(SystemCheckError) as failed:
        check()
    report = str(failed.value)
    for text in found:
        assert text in report, report
    assert "HINT:" in report


def test_every_bad_option_is_reported_at_once():
    with (
        override_settings(MONA={"context_klass": "X", "excluded_urls": ["("]}),
        pytest.raises(SystemCheckError) as failed,
    ):
        check()
    assert "mona_middleware.E002" in str(failed.value)
    assert "mona_middleware.E003" in str(failed.value)


def test_the_middleware_not_first_is_a_warning_naming_what_comes_before():
    with override_settings(MONA=BASE_MONA, MIDDLEWARE=[COMMON, MONA_MIDDLEWARE]):
        report = check()
    assert "mona_middleware.W001" in report and COMMON in report
    assert "HINT: move it to the top" in report


def test_the_middleware_missing_is_a_warning():
    with override_settings(MONA=BASE_MONA, MIDDLEWARE=[COMMON]):
        report = check()
    assert "mona_middleware.W002" in report and "no request is monitored" in report


def test_a_check_can_be_silenced():
    with override_settings(
        MONA=BASE_MONA,
        MIDDLEWARE=[COMMON, MONA_MIDDLEWARE],
        SILENCED_SYSTEM_CHECKS=["mona_middleware.W001"],
    ):
        assert "mona_middleware" not in check()


@pytest.mark.parametrize(
    ("source", "middleware", "warned"),
    [
        # Django's own handler answers lifespan once MonaMiddleware is built into it.
        ("from django.core.asgi import get_asgi_application\n"
         "application = get_asgi_application()\n", [MONA_MIDDLEWARE, COMMON], False),
        ("from django.core.asgi import get_asgi_application\n"
         "application = get_asgi_application()\n", [COMMON], True),
        # A router in front of it refuses lifespan before Django sees it.
        ("from django.core.asgi import get_asgi_application\n"
         "from channels.routing import ProtocolTypeRouter\n"
         "application = ProtocolTypeRouter({'http': get_asgi_application()})\n",
         [MONA_MIDDLEWARE, COMMON], True),
        ("from mona_middleware.django import asgi_application\n"
         "application = asgi_application()\n", [MONA_MIDDLEWARE, COMMON], False),
        ("import mona_middleware.asgi\n"
         "from channels.routing import ProtocolTypeRouter\n"
         "application = ProtocolTypeRouter({})\n"
         "application = mona_middleware.asgi.MonaLifespan(application)\n",
         [MONA_MIDDLEWARE, COMMON], False),
    ],
)  # fmt: skip
def test_an_asgi_application_that_lifespan_does_not_reach_us_through_is_a_warning(
    tmp_path, monkeypatch, source, middleware, warned
):
    # Read, not imported: importing it would build the middleware (and the exporter).
    (tmp_path / "project_asgi.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    with override_settings(
        MONA=BASE_MONA, ASGI_APPLICATION="project_asgi.application", MIDDLEWARE=middleware
    ):
        report = check()
    assert ("mona_middleware.W003" in report) is warned, report
    if warned:
        assert "asgi_application()" in report and "MonaLifespan(" in report


def w003(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "mona_middleware.W003" in r.getMessage()]


def test_the_test_clients_handler_never_logs_w003(memory, monkeypatch, caplog):
    monkeypatch.setattr(mona_middleware, "_warned_pid", None)
    monkeypatch.setattr(mona_asgi, "_lifespan_pid", None)
    caplog.set_level(logging.WARNING, logger="mona_middleware")

    async def requests(n: int) -> list[int]:
        client = AsyncClient()  # a handler of its own, per client
        return [(await client.get(f"/items/{i}")).status_code for i in range(n)]

    with override_settings(MONA=BASE_MONA):
        for _ in range(3):
            assert asyncio.run(requests(2)) == [200, 200]
    assert w003(caplog) == []


def test_a_servers_handler_without_lifespan_logs_w003_once_per_process(memory, monkeypatch, caplog):
    # No check runs under uvicorn: the first ASGI request logs the same W003, when no
    # lifespan reached one of ours before it (lifespan off, a router refusing it).
    from django.core.asgi import get_asgi_application

    monkeypatch.setattr(mona_middleware, "_warned_pid", None)
    monkeypatch.setattr(mona_asgi, "_lifespan_pid", None)
    caplog.set_level(logging.WARNING, logger="mona_middleware")
    with override_settings(MONA=BASE_MONA):
        for n in range(3):  # three handlers (as three asgi.py imports would build)
            sent = asyncio.run(get(get_asgi_application(), f"/items/{n}"))
            assert sent[0]["status"] == 200
    (warned,) = w003(caplog)
    assert "HINT:" in warned.getMessage()


def test_a_servers_handler_that_lifespan_reached_logs_no_w003(memory, monkeypatch, caplog):
    from django.core.asgi import get_asgi_application

    from ..asgi.helpers import LifespanDriver

    monkeypatch.setattr(mona_middleware, "_warned_pid", None)
    monkeypatch.setattr(mona_asgi, "_lifespan_pid", None)
    caplog.set_level(logging.DEBUG, logger="mona_middleware")

    async def serve(application) -> list:
        driver = LifespanDriver(application, memory)
        answers = [(await driver.startup())[0]]
        assert (await get(application, "/items/1"))[0]["status"] == 200
        answers.append((await driver.shutdown())[0])
        return answers

    with override_settings(MONA=BASE_MONA):
        for application in (get_asgi_application(), asgi_application()):
            assert asyncio.run(serve(application)) == [
                "lifespan.startup.complete",
                "lifespan.shutdown.complete",
            ]
    assert w003(caplog) == []
    # Django's refusal is expected there: answered without a warning.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
