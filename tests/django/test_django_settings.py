"""settings.MONA: options, validation at start-up, hooks, and requests our code cannot break."""

from __future__ import annotations

import logging
import threading

import pytest

pytest.importorskip("django")

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings

import mona_middleware as mona
import mona_middleware.django as mona_django
from mona_middleware._runtime import process as _runtime
from mona_middleware.django import MonaMiddleware
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
        with pytest.raises(ImproperlyConfigured, match=named):
            app_config().ready()
        with pytest.raises(ImproperlyConfigured, match=named):
            Client().get("/items/1")  # Django builds the middleware chain: fails, not the view


def test_mona_must_be_a_dict():
    with (
        override_settings(MONA=["context_class"]),
        pytest.raises(ImproperlyConfigured, match="must be a dict"),
    ):
        app_config().ready()


def test_a_good_configuration_passes_the_app_check():
    with mona_settings(context_class="OK", excluded_urls="^/health$", batch_size=10):
        app_config().ready()


def test_disabled_middleware_leaves_the_chain(memory):
    with mona_settings(enabled=False):
        response = Client().get("/items/1")
    assert response.json() == {"id": 1}
    assert not hasattr(response.wsgi_request, "_mona_context")
    assert mona.flush(5) and memory.messages == []


def test_hooks_see_the_context_request_and_response(memory):
    seen = []

    def on_request(ctx, request):
        seen.append(("request", request.path, ctx is mona.current_context()))

    def on_response(ctx, request, response):
        seen.append(("response", response.status_code))
        ctx.export({"tenant": request.headers["X-Tenant"]})

    with mona_settings(request_hook=on_request, response_hook=on_response):
        Client().get("/items/1", headers={"X-Tenant": "acme"})
    assert seen == [("request", "/items/1", True), ("response", 200)]
    assert mona.flush(5)
    ((_, fields),) = memory.contexts().items()
    assert fields["tenant"] == "acme"


def test_a_failing_hook_never_breaks_the_request(memory, caplog):
    caplog.set_level(logging.ERROR)
    with mona_settings(request_hook=lambda ctx, request: 1 / 0):
        assert Client().get("/items/2").json() == {"id": 2}
    assert "raised; the request goes on" in caplog.text
    assert mona.flush(5)
    assert [f["item_id"] for f in memory.contexts().values()] == [2]


def test_a_response_our_code_cannot_read_still_goes_out(memory, caplog):
    class Unreadable(HttpResponse):
        @property
        def status_code(self):
            raise RuntimeError("not this one")

        @status_code.setter
        def status_code(self, value):
            pass

    unreadable = Unreadable("still sent")
    middleware = MonaMiddleware(lambda request: unreadable)
    assert middleware(RequestFactory().get("/items/1")) is unreadable
    assert "could not follow the response" in caplog.text
    assert mona.flush(5) and len(memory.contexts()) == 1  # closed at once, not leaked


def test_a_context_opened_in_one_thread_and_closed_in_another_is_delivered_once(memory):
    response = HttpResponse("x")
    middleware = MonaMiddleware(lambda request: response)
    opener = threading.Thread(target=middleware, args=(RequestFactory().get("/items/1"),))
    opener.start()
    opener.join(5)
    response.close()  # a server closing on another thread, in another contextvars.Context
    response.close()
    assert mona.current_context() is None
    assert mona.flush(5)
    ((_, fields),) = memory.contexts().items()
    assert fields["http_status_code"] == 200
