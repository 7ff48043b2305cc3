"""Options resolve once: arguments over the environment a Mona user has over defaults."""

from __future__ import annotations

import re

import pytest

import mona_middleware as mona
from mona_middleware._util.options import closest, shown_value
from mona_middleware._web.options import ALL_OPTIONS
from mona_middleware.config import DEFAULT_TOKEN_URL, MonaConfig

from .mona_server import MonaTestServer

SDK_ENV = {
    "MONA_SDK_API_KEY": "key-from-env",
    "MONA_SDK_SECRET": "secret-from-env",
    "MONA_SDK_USER_ID": "acme",
    "MONA_SDK_AUTH_API_TOKEN_URL": "http://127.0.0.1:1/token",
    "MONA_SDK_REFRESH_TOKEN_URL": "http://127.0.0.1:1/refresh",
    "MONA_SDK_OVERRIDE_REST_API_HOST": "127.0.0.1:2",
    "MONA_SDK_OVERRIDE_REST_API_URL": "http://127.0.0.1:2/export",
    "MONA_SDK_SHOULD_USE_SSL": "false",
    "MONA_SDK_FILTER_NONE_FIELDS_ON_EXPORT": "true",
    "MONA_SDK_RAISE_EXPORT_EXCEPTIONS": "True",
    "MONA_SDK_NUM_OF_RETRIES_FOR_AUTHENTICATION": "5",
    "MONA_SDK_WAIT_TIME_FOR_AUTHENTICATION_RETRIES_SEC": "0.5",
    "MONA_DISABLE_ALL": "false",
    "MONA_MIDDLEWARE_TRANSPORT": "rest",
    "MONA_MIDDLEWARE_FILE_PATH": "/tmp/x.jsonl",
    "MONA_MIDDLEWARE_QUEUE_SIZE": "123",
    "MONA_MIDDLEWARE_BATCH_SIZE": "45",
    "MONA_MIDDLEWARE_FLUSH_INTERVAL": "0.25",
    "MONA_MIDDLEWARE_SENDER_THREADS": "3",
    "MONA_MIDDLEWARE_HTTP_TIMEOUT": "7",
    "MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT": "9",
    "MONA_MIDDLEWARE_GLOBAL_FIELDS": '{"service": "api"}',
}


def test_every_variable_is_read():
    config = MonaConfig.resolve(env=SDK_ENV)
    assert (config.api_key, config.secret, config.user_id) == (
        "key-from-env",
        "secret-from-env",
        "acme",
    )
    assert config.auth_api_token_url == "http://127.0.0.1:1/token"
    assert config.refresh_token_url == "http://127.0.0.1:1/refresh"
    assert config.rest_api_host == "127.0.0.1:2"
    assert config.rest_api_url == "http://127.0.0.1:2/export"
    assert (config.use_ssl, config.filter_none_fields, config.raise_export_exceptions) == (
        False,
        True,
        True,
    )
    assert (config.auth_retries, config.auth_retry_wait, config.disable_all) == (5, 0.5, False)
    assert (config.transport, config.file_path, config.queue_size, config.batch_size) == (
        "rest",
        "/tmp/x.jsonl",
        123,
        45,
    )
    assert (config.flush_interval, config.sender_threads, config.http_timeout) == (0.25, 3, 7.0)
    assert config.shutdown_timeout == 9.0
    assert dict(config.global_fields) == {"service": "api"}


def test_arguments_win_over_the_environment_which_wins_over_defaults():
    config = MonaConfig.resolve({"batch_size": 7, "user_id": "arg"}, env=SDK_ENV)
    assert (config.batch_size, config.user_id, config.queue_size) == (7, "arg", 123)
    assert MonaConfig.resolve(env={}).auth_api_token_url == DEFAULT_TOKEN_URL


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MONA_MIDDLEWARE_BATCH_SIZE": "many"}, "MONA_MIDDLEWARE_BATCH_SIZE"),
        ({"MONA_MIDDLEWARE_QUEUE_SIZE": "0"}, "MONA_MIDDLEWARE_QUEUE_SIZE"),
        ({"MONA_MIDDLEWARE_FLUSH_INTERVAL": "-1"}, "MONA_MIDDLEWARE_FLUSH_INTERVAL"),
        ({"MONA_SDK_SHOULD_USE_SSL": "maybe"}, "MONA_SDK_SHOULD_USE_SSL"),
        ({"AUTH_MODE": "OAUTH"}, "AUTH_MODE"),
        ({"MONA_SDK_OVERRIDE_REST_API_URL": "ftp://x"}, "MONA_SDK_OVERRIDE_REST_API_URL"),
        ({"MONA_MIDDLEWARE_TRANSPORT": "kafka"}, "MONA_MIDDLEWARE_TRANSPORT"),
        ({"MONA_MIDDLEWARE_GLOBAL_FIELDS": "no-colon"}, "MONA_MIDDLEWARE_GLOBAL_FIELDS"),
        ({"MONA_SDK_API_KEY": "k"}, "MONA_SDK_SECRET"),
        ({"AUTH_MODE": "NO_AUTH"}, "MONA_SDK_USER_ID"),
        ({"AUTH_MODE": "MANUAL_TOKEN"}, "MONA_SDK_ACCESS_TOKEN"),
    ],
)
def test_invalid_values_raise_at_once_naming_the_variable(env, named):
    with pytest.raises(mona.MonaConfigError, match=named):
        MonaConfig.resolve(env=env)


def test_invalid_options_name_the_option():
    with pytest.raises(mona.MonaConfigError, match="option sender_threads"):
        mona.configure(sender_threads=0)
    unknown = r"unknown mona_middleware option: 'batchsize' \(did you mean 'batch_size'\?\)"
    with pytest.raises(mona.MonaConfigError, match=unknown):
        mona.configure(batchsize=10)


def test_lazy_configuration_logs_a_bad_variable_and_keeps_going(monkeypatch, caplog, memory):
    monkeypatch.setenv("MONA_MIDDLEWARE_BATCH_SIZE", "lots")
    config = MonaConfig.resolve(strict=False)
    assert config.batch_size == 500
    assert "MONA_MIDDLEWARE_BATCH_SIZE" in caplog.text


def test_secret_values_are_masked_everywhere():
    config = MonaConfig.resolve(env={**SDK_ENV, "MONA_SDK_ACCESS_TOKEN": "tok-very-secret"})
    shown = repr(config) + str(config.masked())
    for secret in ("key-from-env", "secret-from-env", "tok-very-secret"):
        assert secret not in shown
    with pytest.raises(mona.MonaConfigError) as raised:
        MonaConfig.resolve({"api_key": object()}, env={})
    assert "object at" not in str(raised.value)


def test_transport_choice_says_why():
    assert MonaConfig.resolve(env={}).transport_choice()[0] == "file"
    assert MonaConfig.resolve(env=SDK_ENV).transport_choice()[0] == "rest"
    sdk_no_auth = {"MONA_SDK_SHOULD_USE_AUTHENTICATION": "false", "MONA_SDK_USER_ID": "u"}
    assert MonaConfig.resolve(env=sdk_no_auth).auth_mode == "NO_AUTH"


# mona_sdk's authenticator factory, mapped back to the mode each class stands for
def sdk_auth_mode(env: dict) -> str:
    from mona_sdk.auth.authenticators.factory import AUTH_MODE_MAP, _get_cls
    from mona_sdk.client_util import get_boolean_value_for_env_var

    modes = {cls: mode for mode, cls in AUTH_MODE_MAP.items()}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        use_auth = get_boolean_value_for_env_var("MONA_SDK_SHOULD_USE_AUTHENTICATION", True)
    token = env.get("MONA_SDK_ACCESS_TOKEN")
    return modes[_get_cls(use_auth, token, env.get("AUTH_MODE", "MONA"))]


KEY_AND_SECRET = {"MONA_SDK_API_KEY": "k", "MONA_SDK_SECRET": "s"}


TOKEN = {"MONA_SDK_ACCESS_TOKEN": "tok-secret-value"}


NO_AUTH = {"MONA_SDK_SHOULD_USE_AUTHENTICATION": "false", "MONA_SDK_USER_ID": "u"}


@pytest.mark.parametrize(
    "env",
    [
        TOKEN,
        {**TOKEN, **KEY_AND_SECRET},
        {**TOKEN, "MONA_SDK_SHOULD_USE_AUTHENTICATION": "true"},
        {**TOKEN, **NO_AUTH},
        NO_AUTH,
        KEY_AND_SECRET,
        {},
    ],
)
def test_without_auth_mode_the_mode_is_the_one_mona_sdk_picks(env):
    assert MonaConfig.resolve(env=env).auth_mode == sdk_auth_mode(env)


def test_a_token_alone_exports_with_it_as_mona_sdk_would(monkeypatch):
    with MonaTestServer(manual_token="manual-token-123") as server:
        monkeypatch.setenv("MONA_SDK_ACCESS_TOKEN", "manual-token-123")
        monkeypatch.setenv("MONA_SDK_USER_ID", "test-user")
        monkeypatch.setenv("MONA_SDK_OVERRIDE_REST_API_URL", server.export_url)
        assert mona.configure(flush_interval=0.05).auth_mode == "MANUAL_TOKEN"
        with mona.context("REQ", context_id="r-1"):
            mona.export({"a": 1})
        assert mona.flush(5)
        (export,) = server.export_requests()
        assert export.header("Authorization") == "Bearer manual-token-123"
        assert server.token_requests == 0


def test_an_explicit_auth_mode_wins_and_a_disagreement_with_mona_sdk_is_logged(caplog):
    env = {**TOKEN, **KEY_AND_SECRET, "AUTH_MODE": "MONA"}
    assert MonaConfig.resolve(env=env).auth_mode == "MONA"
    assert "mona_sdk would use MANUAL_TOKEN" in caplog.text
    with_token = {**TOKEN, "MONA_SDK_USER_ID": "u"}
    assert MonaConfig.resolve({"auth_mode": "no_auth"}, env=with_token).auth_mode == "NO_AUTH"
    assert "tok-secret-value" not in caplog.text


# name -> (option, mona_sdk's default for it, read from mona_sdk's client.py/auth/globals.py)
SDK_BOOLEANS = {
    "MONA_SDK_SHOULD_USE_SSL": ("use_ssl", True),
    "MONA_SDK_FILTER_NONE_FIELDS_ON_EXPORT": ("filter_none_fields", False),
    "MONA_SDK_RAISE_EXPORT_EXCEPTIONS": ("raise_export_exceptions", False),
    "MONA_SDK_USE_REFRESH_TOKENS": ("use_refresh_tokens", True),
}


SDK_SPELLINGS = ["true", "True", "false", "False"]


OTHER_SPELLINGS = ["0", "1", "TRUE", "FALSE", "yes", "no", "on", "off", " true", "false "]


@pytest.mark.parametrize("value", SDK_SPELLINGS + OTHER_SPELLINGS)
@pytest.mark.parametrize("var", sorted(SDK_BOOLEANS))
def test_sdk_booleans_mean_what_they_mean_to_mona_sdk(var, value, monkeypatch, caplog):
    from mona_sdk.client_util import get_boolean_value_for_env_var

    option, sdk_default = SDK_BOOLEANS[var]
    assert getattr(MonaConfig.resolve(env={}), option) == sdk_default
    monkeypatch.setenv(var, value)
    sdk_value = get_boolean_value_for_env_var(var, sdk_default)
    assert getattr(MonaConfig.resolve(strict=False), option) == sdk_value  # the lazy path
    if value in SDK_SPELLINGS:
        assert getattr(MonaConfig.resolve(), option) == sdk_value
        return
    shown = f"{var}={shown_value(value)}"
    default = str(sdk_default).lower()
    assert f"{shown} is not true or false as mona_sdk reads it" in caplog.text
    assert f"mona_sdk would keep its default, {default}); using {default}" in caplog.text
    expected = re.escape(shown) + " is not true or false as mona_sdk reads it"
    with pytest.raises(mona.MonaConfigError, match=expected):
        MonaConfig.resolve()


@pytest.mark.parametrize("value", SDK_SPELLINGS + OTHER_SPELLINGS)
def test_should_use_authentication_is_read_as_mona_sdk_reads_it(value, monkeypatch, caplog):
    env = {"MONA_SDK_SHOULD_USE_AUTHENTICATION": value, "MONA_SDK_USER_ID": "u"}
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    assert MonaConfig.resolve(strict=False).auth_mode == sdk_auth_mode(env)
    if value not in SDK_SPELLINGS:
        assert "MONA_SDK_SHOULD_USE_AUTHENTICATION" in caplog.text
        with pytest.raises(mona.MonaConfigError, match="MONA_SDK_SHOULD_USE_AUTHENTICATION="):
            MonaConfig.resolve()


def test_auth_mode_and_disable_all_variables_are_read_exactly(caplog):
    user = {"MONA_SDK_USER_ID": "u"}
    assert MonaConfig.resolve(env={**user, "AUTH_MODE": "NO_AUTH"}).auth_mode == "NO_AUTH"
    for bad in ("no_auth", " NO_AUTH", "OIDC"):
        with pytest.raises(mona.MonaConfigError, match=re.escape(f"AUTH_MODE={shown_value(bad)}")):
            MonaConfig.resolve(env={**user, "AUTH_MODE": bad})
    lazy = MonaConfig.resolve(env={**TOKEN, "AUTH_MODE": "mona"}, strict=False)
    assert lazy.auth_mode == "MANUAL_TOKEN"  # mona_sdk's choice: the token wins
    assert "tok-secret-value" not in caplog.text
    # mona-client's "truthy value"; a kill switch fails safe: only an explicit off is off.
    for on in ("True", "true", "1", "yes", "please"):
        assert MonaConfig.resolve(env={"MONA_DISABLE_ALL": on}).disable_all is True
    for off in ("", "false", "False", "0", "no", "off"):
        assert MonaConfig.resolve(env={"MONA_DISABLE_ALL": off}).disable_all is False


def test_our_own_booleans_and_arguments_keep_the_looser_spellings():
    env = {"MONA_MIDDLEWARE_GZIP": "1", "MONA_MIDDLEWARE_SPOOL": "off"}
    config = MonaConfig.resolve({"use_ssl": "0", "disable_all": "yes"}, env=env)
    assert (config.gzip, config.spool, config.use_ssl, config.disable_all) == (
        True,
        False,
        False,
        True,
    )


@pytest.mark.parametrize(
    ("fallback", "option", "value", "expected"),
    [
        ("MONA_USER_ID", "user_id", "acc", "acc"),
        ("MONA_LOGGER_NAME", "logger_name", "mona-logger", "mona-logger"),
        ("MONA_LOGGING_LEVEL", "log_level", "10", 10),
        ("MONA_LOGGING_LEVEL", "log_level", "warning", 30),
        ("MONA_CLIENT_CONFIG_FILE", "config_file", "/etc/mona.json", "/etc/mona.json"),
        ("MONA_SHOULD_RAISE_EXCEPTIONS", "raise_export_exceptions", "true", True),
    ],
)
def test_mona_sdk_and_mona_client_fallback_variables(fallback, option, value, expected):
    assert getattr(MonaConfig.resolve(env={fallback: value}), option) == expected


def test_our_own_variable_wins_over_its_fallback():
    env = {"MONA_USER_ID": "old", "MONA_SDK_USER_ID": "new", "MONA_LOGGING_LEVEL": "10"}
    config = MonaConfig.resolve(env={**env, "MONA_SDK_LOGGING_LEVEL": "ERROR"})
    assert (config.user_id, config.log_level) == ("new", 40)


@pytest.mark.parametrize(("value", "level"), [("10", 10), ("20", 20), ("DEBUG", 10), ("5", 5)])
def test_numeric_logging_levels_are_accepted(value, level):
    assert MonaConfig.resolve(env={"MONA_SDK_LOGGING_LEVEL": value}).log_level == level


@pytest.mark.parametrize(
    ("var", "option"),
    [
        ("MONA_SDK_SHOULD_LOG_FAILED_MESSAGES", "log_failed_messages"),
        ("MONA_SDK_RAISE_AUTHENTICATION_EXCEPTIONS", "raise_authentication_exceptions"),
        ("MONA_SDK_RAISE_SERVICE_EXCEPTIONS", "raise_service_exceptions"),
    ],
)
def test_mona_sdk_flags_read_as_mona_sdk_reads_them(var, option):
    assert getattr(MonaConfig.resolve(env={var: "true"}), option) is True
    assert getattr(MonaConfig.resolve(env={var: "False"}), option) is False
    with pytest.raises(mona.MonaConfigError, match=var):
        MonaConfig.resolve(env={var: "1"})


def test_print_logs_is_any_non_empty_value_as_in_mona_client():
    assert MonaConfig.resolve(env={"MONA_PRINT_LOGS": "yes"}).print_logs is True
    assert MonaConfig.resolve(env={}).print_logs is False


def test_variables_that_do_not_apply_are_logged_once_with_what_to_set(monkeypatch, caplog):
    from mona_middleware import config as config_module

    monkeypatch.setattr(config_module, "_warned", set())
    monkeypatch.setenv("MONA_HOST", "10.0.0.1")
    monkeypatch.setenv("MONA_BLOCKING", "true")
    mona.configure(transport="memory")
    mona.configure(transport="memory", batch_size=7)
    text = caplog.text
    assert text.count("MONA_HOST is set but does not apply") == 1
    assert "set MONA_SDK_API_KEY and MONA_SDK_SECRET" in text
    assert text.count("MONA_BLOCKING is set but does not apply: exports never block") == 1


# -- one spell-check for every way of giving an option ------------------------------------


def _wsgi_app(environ, start_response):
    start_response("200 OK", [])
    return [b""]


async def _asgi_app(scope, receive, send):  # pragma: no cover - never called
    pass


def _build(kind: str, **options):
    if kind == "configure":
        return mona.configure(**options)
    if kind == "wsgi":
        from mona_middleware.wsgi import MonaWSGIMiddleware

        return MonaWSGIMiddleware(_wsgi_app, handle_sigterm=False, **options)
    if kind == "asgi":
        from mona_middleware.asgi import MonaASGIMiddleware

        return MonaASGIMiddleware(_asgi_app, **options)
    if kind == "flask":
        flask = pytest.importorskip("flask")
        from mona_middleware.flask import MonaFlask

        return MonaFlask(flask.Flask("typo"), handle_sigterm=False, **options)
    celery = pytest.importorskip("celery")
    from mona_middleware.celery import MonaCelery

    return MonaCelery(celery.Celery("typo"), **options)


@pytest.mark.parametrize(
    ("kind", "typo", "meant"),
    [
        ("configure", "batchsize", "batch_size"),
        ("wsgi", "context_clas", "context_class"),
        ("asgi", "excluded_url", "excluded_urls"),
        ("flask", "context_clas", "context_class"),
        ("celery", "continue_contxt", "continue_context"),
    ],
)
def test_an_unknown_keyword_option_says_which_was_meant(kind, typo, meant):
    expected = f"unknown mona_middleware option: '{typo}' (did you mean '{meant}'?)"
    with pytest.raises(mona.MonaConfigError) as raised:
        _build(kind, **{typo: "X"})
    assert str(raised.value) == expected


def test_an_unknown_mona_key_in_flask_app_config_is_not_ignored(memory):
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask

    app = flask.Flask("typo")
    app.config["MONA_CONTEXT_CLAS"] = "RECOMMENDATIONS"
    app.config["MONA_WHATEVER_ELSE"] = 1
    with pytest.raises(mona.MonaConfigError) as raised:
        MonaFlask(app, handle_sigterm=False)
    assert str(raised.value) == (
        "unknown mona_middleware app.config keys: 'MONA_CONTEXT_CLAS' (did you mean"
        " 'MONA_CONTEXT_CLASS'?), 'MONA_WHATEVER_ELSE'"
    )

    app = flask.Flask("fixed")  # spelt right, the class is the one asked for
    app.config["MONA_CONTEXT_CLASS"] = "RECOMMENDATIONS"
    app.config["OTHER_SETTING"] = 1  # keys of other prefixes are none of our business
    MonaFlask(app, handle_sigterm=False)
    app.add_url_rule("/", view_func=lambda: "ok")
    assert app.test_client().get("/").status_code == 200
    mona.flush(5)
    assert [key[0] for key in memory.contexts()] == ["RECOMMENDATIONS"]


def test_django_s_check_uses_the_same_spell_check():
    pytest.importorskip("django")
    from mona_middleware.django.conf import settings_problems

    for typo in ("context_klass", "batchsize", "api_kye"):
        hint = settings_problems({typo: "X"})[0].hint
        assert hint == f'did you mean "{closest(typo, ALL_OPTIONS)}"?'
