"""Django for these tests only: settings configured once, then overridden per test.

``settings.configure`` is process-wide and cannot be undone, so it holds only neutral
values (and is skipped when something else configured Django first); everything these
tests rely on is applied with ``override_settings`` around each test and removed after.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import mona_middleware as mona

pytest.importorskip("django")

import django
from django.conf import settings
from django.test.utils import override_settings

MONA_MIDDLEWARE = "mona_middleware.django.MonaMiddleware"
# Tests never take over the pytest process's SIGTERM.
BASE_MONA = {"handle_sigterm": False}


@pytest.fixture(scope="session")
def django_ready() -> None:
    if not settings.configured:
        settings.configure(
            SECRET_KEY="tests-only",
            DATABASES={},
            INSTALLED_APPS=[],
            LOGGING_CONFIG=None,  # leave pytest's logging set-up alone
            USE_TZ=True,
        )
    django.setup()


@pytest.fixture(autouse=True)
def django_settings(django_ready: None) -> Iterator[None]:
    """The test URLconf behind ``MonaMiddleware``; ``override_settings(MONA=...)`` to vary.

    Afterwards no request's context may still be current: a leak would leave the next
    test's exports in a closed request.
    """
    with override_settings(
        ROOT_URLCONF="tests.django.urls",
        MIDDLEWARE=[MONA_MIDDLEWARE],
        MONA=BASE_MONA,
        ALLOWED_HOSTS=["testserver"],
        DEBUG=False,
        DEBUG_PROPAGATE_EXCEPTIONS=False,
    ):
        yield
    assert mona.current_context() is None, "a request's context leaked into the test thread"
