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
from mona_middleware.django import asgi_application

from .conftest import BASE_MONA, MONA_MIDDLEWARE

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
    ("source", "warned"),
    [
        ("from django.core.asgi import get_asgi_application\n"
         "application = get_asgi_application()\n", True),
        ("from mona_middleware.django import asgi_application\n"
         "application = asgi_application()\n", False),
        ("import mona_middleware.asgi\n"
         "from channels.routing import ProtocolTypeRouter\n"
         "application = ProtocolTypeRouter({})\n"
         "application = mona_middleware.asgi.MonaLifespan(application)\n", False),
    ],
)  # fmt: skip
def test_an_asgi_application_without_our_lifespan_is_a_warning(
    tmp_path, monkeypatch, source, warned
):
    # Read, not imported: importing it would build the middleware (and the exporter).
    (tmp_path / "project_asgi.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    with override_settings(MONA=BASE_MONA, ASGI_APPLICATION="project_asgi.application"):
        report = check()
    assert ("mona_middleware.W003" in report) is warned, report
    if warned:
        assert "asgi_application()" in report and "MonaLifespan(" in report


def test_under_an_asgi_server_the_middleware_warns_once_without_our_wrapper(
    memory, monkeypatch, caplog
):
    # No check runs under uvicorn: the first ASGI request logs the same W003.
    monkeypatch.setattr(mona_asgi, "_wrappers_built", False)
    caplog.set_level(logging.WARNING, logger="mona_middleware")

    async def requests(n: int) -> list[int]:
        client = AsyncClient()
        return [(await client.get(f"/items/{i}")).status_code for i in range(n)]

    with override_settings(MONA=BASE_MONA):
        assert asyncio.run(requests(2)) == [200, 200]
        warned = [r for r in caplog.records if "mona_middleware.W003" in r.getMessage()]
        assert len(warned) == 1 and "HINT:" in warned[0].getMessage()
        caplog.clear()
        asgi_application()  # what asgi.py builds before the server's first request
        assert asyncio.run(requests(1)) == [200]
    assert not [r for r in caplog.records if "W003" in r.getMessage()]
