"""The web adapters' options: resolved like the exporter's, and a bad one fails at start."""

from __future__ import annotations

import pytest

import mona_middleware as mona
from mona_middleware._web.options import (
    DEFAULT_CONTEXT_CLASS,
    DEFAULT_FIELD_NAMES,
    WebOptions,
    options_from_prefixed,
    split_options,
)
from mona_middleware._web.recorder import WebRecorder


def test_an_invalid_redact_headers_fails_at_start_naming_it():
    with pytest.raises(mona.MonaConfigError, match="redact_headers"):
        WebRecorder({"handle_sigterm": False, "redact_headers": "("})
    with pytest.raises(mona.MonaConfigError, match="redact_headers"):
        WebRecorder({"handle_sigterm": False, "redact_headers": 42})


def test_arguments_win_over_the_environment_which_wins_over_defaults():
    env = {
        "MONA_MIDDLEWARE_CONTEXT_CLASS": "FROM_ENV",
        "MONA_MIDDLEWARE_EXCLUDED_URLS": "^/health$, ^/metrics$",
        "MONA_MIDDLEWARE_CONTEXT_ID_HEADER": "X-Request-Id",
    }
    options = WebOptions.resolve({"context_class": "FROM_ARGUMENT"}, env=env)
    assert options.context_class == "FROM_ARGUMENT"
    assert [p.pattern for p in options.excluded_urls] == ["^/health$", "^/metrics$"]
    assert options.context_id_header == "X-Request-Id"
    defaults = WebOptions.resolve({}, env={})
    assert defaults.context_class == DEFAULT_CONTEXT_CLASS
    assert defaults.excluded_urls == () and defaults.capture_headers == frozenset()
    assert defaults.enabled is True and defaults.handle_sigterm is True


def test_captured_header_names_are_compared_lower_cased():
    options = WebOptions.resolve({"capture_headers": "User-Agent, X-Request-ID"}, env={})
    assert options.capture_headers == frozenset({"user-agent", "x-request-id"})
    listed = WebOptions.resolve({"capture_headers": ["Accept"]}, env={})
    assert listed.capture_headers == frozenset({"accept"})


def test_field_names_rename_or_drop_request_fields_and_refuse_what_is_monas():
    renamed = {"route": "endpoint", "duration_ms": None}
    options = WebOptions.resolve({"field_names": renamed}, env={})
    assert options.field_names == {**DEFAULT_FIELD_NAMES, **renamed}
    for bad in ({"path": "url"}, {"route": "MONA_route"}, {"route": ""}, ["route"]):
        with pytest.raises(mona.MonaConfigError, match="field_names"):
            WebOptions.resolve({"field_names": bad}, env={})


def test_an_unknown_option_is_refused_and_the_exporters_are_told_apart():
    web, exporter = split_options({"context_class": "A", "batch_size": 10})
    assert web == {"context_class": "A"} and exporter == {"batch_size": 10}
    with pytest.raises(mona.MonaConfigError, match="context_klass"):
        split_options({"context_klass": "A"})
    with pytest.raises(mona.MonaConfigError, match="batch_size"):
        WebOptions.resolve({"batch_size": 10}, env={})  # an exporter option, not an adapter's


def test_a_framework_config_gives_its_mona_prefixed_keys():
    config = {"MONA_CONTEXT_CLASS": "SHOP", "MONA_BATCH_SIZE": 5, "SECRET_KEY": "x", "MONA_X": 1}
    assert options_from_prefixed(config) == {"context_class": "SHOP", "batch_size": 5}
