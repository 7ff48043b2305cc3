"""The optional ``mona_middleware.django`` app: registers the system checks, starts nothing."""

from __future__ import annotations

import signal

import pytest

from mona_middleware._runtime import process as _runtime

pytest.importorskip("django")

from django.test import override_settings

import mona_middleware.django as mona_django
from mona_middleware.django.apps import MonaDjangoConfig


def mona_settings(**options):
    return override_settings(MONA={"handle_sigterm": False, **options})


def app_config() -> MonaDjangoConfig:
    return MonaDjangoConfig("mona_middleware.django", mona_django)


def test_a_good_configuration_passes_the_app_check():
    with mona_settings(context_class="OK", excluded_urls="^/health$", batch_size=10):
        app_config().ready()


def test_the_app_check_starts_nothing():
    before = signal.getsignal(signal.SIGTERM)
    # handle_sigterm is on by default: the check still installs nothing (runserver's
    # reloader parent runs ready() too, and must keep SIGTERM's default action).
    with override_settings(MONA={"context_class": "OK", "batch_size": 10}):
        app_config().ready()
    assert signal.getsignal(signal.SIGTERM) is before
    assert _runtime.current_exporter() is None
