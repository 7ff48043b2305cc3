"""``settings.MONA``: options over the environment, validated at start-up, naming the key."""

from __future__ import annotations

import pytest

pytest.importorskip("django")

from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

import mona_middleware as mona
import mona_middleware.django as mona_django
from mona_middleware._runtime import process as _runtime
from mona_middleware.django.apps import MonaDjangoConfig


def mona_settings(**options):
    return override_settings(MONA={"handle_sigterm": False, **options})


def app_config() -> MonaDjangoConfig:
    return MonaDjangoConfig("mona_middleware.django", mona_django)


def test_options_come_from_settings_then_env(memory, monkeypatch):
    monkeypatch.setenv("MONA_MIDDLEWARE_CONTEXT_CLASS", "FROM_ENV")
    monkeypatch.setenv("MONA_MIDDLEWARE_EXCLUDED_URLS", "^/items/1$")
    with mona_settings(
        excluded_urls=["^/health$"],
        capture_headers="User-Agent, Authorization, Cookie, X-Api-Key",
        field_names={"duration_ms": None, "route": "endpoint"},
    ):
        client = Client()
        client.get(
            "/items/1",
            headers={
                "User-Agent": "probe/1",
                "Authorization": "Bearer s3cr3t",
                "Cookie": "session=abc",
                "X-Api-Key": "k",
            },
        )
        client.get("/health")
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "FROM_ENV"  # not in settings.MONA: the environment's
    assert fields == {
        "header_user_agent": "probe/1",
        "header_authorization": "[REDACTED]",
        "header_cookie": "[REDACTED]",
        "header_x_api_key": "[REDACTED]",
        "item_id": 1,
        "http_method": "GET",
        "endpoint": "/items/<int:item_id>",
        "http_status_code": 200,
    }


def test_exporter_options_in_settings_configure_the_exporter_once(memory):
    with mona_settings(context_class="TUNED", transport=memory, batch_size=7, flush_interval=0.05):
        Client().get("/items/2")
        config = _runtime.config()
        assert config.batch_size == 7 and config.transport is memory
        Client().get("/items/3")  # a second handler: same options, same exporter config
        assert _runtime.config() is config
    assert mona.flush(5)
    assert {k[0] for k in memory.contexts()} == {"TUNED"} and len(memory.contexts()) == 2


@pytest.mark.parametrize(
    ("mona", "named"),
    [
        ({"context_klass": "X"}, "context_klass"),
        ({"excluded_urls": ["("]}, "excluded_urls"),
        ({"request_hook": "not callable"}, "request_hook"),
        ({"batch_size": "many"}, "batch_size"),
    ],
)
def test_a_bad_option_is_improperly_configured_naming_it(mona, named):
    with override_settings(MONA=mona):
        app_config().ready()  # reports through the system checks now (tests/django/test_checks.py)
        with pytest.raises(ImproperlyConfigured, match=named):
            Client().get("/items/1")  # Django builds the middleware chain: fails, not the view


def test_mona_must_be_a_dict():
    with (
        override_settings(MONA=["context_class"]),
        pytest.raises(ImproperlyConfigured, match="must be a dict"),
    ):
        Client().get("/items/1")
