"""Options resolve once: arguments over the environment a Mona user has over defaults."""

from __future__ import annotations

import logging

import pytest

import mona_middleware as mona
from mona_middleware.config import DEFAULT_TOKEN_URL, MonaConfig

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
    with pytest.raises(mona.MonaConfigError, match=r"unknown .* batchsize"):
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


def test_configure_replaces_a_running_exporter_without_losing_its_data(memory, caplog):
    caplog.set_level(logging.WARNING)
    with mona.context("OLD", context_id="1"):
        mona.export({"a": 1})
    second = mona.transports.InMemoryTransport()
    mona.configure(transport=second)
    assert memory.contexts() == {("OLD", "1"): {"a": 1}}  # flushed by configure()
    with mona.context("NEW", context_id="2"):
        mona.export({"b": 2})
    assert mona.flush(5)
    assert second.contexts() == {("NEW", "2"): {"b": 2}}
