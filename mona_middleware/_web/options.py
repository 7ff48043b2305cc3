"""The options every web adapter takes, declared once with the same spec as ``MonaConfig``.

Resolved like the exporter's: arguments, then the framework's config
(``app.config["MONA_<OPTION>"]``, ``settings.MONA``), then the environment, then the
defaults. Any other name among an adapter's options configures the exporter.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .._util.options import (
    Spec,
    boolean,
    callable_value,
    non_empty_text,
    option,
    resolve,
    specs,
    text,
    unknown_options,
)
from ..config import OPTIONS as CONFIG_OPTIONS
from ..errors import MonaConfigError
from .hooks import BeforeSend, RequestHook, ResponseHook, RouteResolver

__all__ = [
    "ALL_OPTIONS",
    "CELERY_OPTIONS",
    "DEFAULT_CONTEXT_CLASS",
    "DEFAULT_FIELD_NAMES",
    "DEFAULT_WEBSOCKET_CONTEXT_CLASS",
    "WEB_OPTIONS",
    "CeleryOptions",
    "WebOptions",
    "options_from_prefixed",
    "split_celery_options",
    "split_options",
]

DEFAULT_CONTEXT_CLASS = "HTTP_REQUEST"
DEFAULT_WEBSOCKET_CONTEXT_CLASS = "WEBSOCKET"
# Standard request fields and their default names; rename or drop (None) via field_names.
DEFAULT_FIELD_NAMES = MappingProxyType(
    {
        "method": "http_method",
        "route": "http_route",
        "status_code": "http_status_code",
        "duration_ms": "duration_ms",
        "exception": "exception_type",
        "trace_id": "trace_id",  # only when OpenTelemetry traces the request
    }
)


def _split(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def _patterns(value: Any) -> tuple[re.Pattern[str], ...]:
    """Regexes: one, a list of them, or a comma-separated string (the variable)."""
    if isinstance(value, (str, re.Pattern)):
        value = _split(value) if isinstance(value, str) else [value]
    try:
        return tuple(p if isinstance(p, re.Pattern) else re.compile(str(p)) for p in value)
    except re.error as exc:
        raise ValueError(f"not a regex: {exc}") from None


def _header_names(value: Any) -> frozenset[str]:
    return frozenset(header.lower() for header in _split(value))


def _redact_pattern(value: Any) -> re.Pattern[str] | None:
    """The user's extra redaction: a regex (str or compiled) or a list of them.

    Case-insensitive whatever its flags, as header names are compared lower-cased.
    """
    if isinstance(value, re.Pattern):
        return re.compile(value.pattern, value.flags | re.IGNORECASE)
    if isinstance(value, (list, tuple, set, frozenset)):
        parts = sorted(p.pattern if isinstance(p, re.Pattern) else str(p) for p in value)
        value = "|".join(f"(?:{part})" for part in parts)
    if not isinstance(value, str):
        raise TypeError(f"must be a regex or a list of them, got {type(value).__name__}")
    try:
        return re.compile(value, re.IGNORECASE) if value else None
    except re.error as exc:
        raise ValueError(f"not a regex: {exc}") from None


def _service_name(value: Any) -> str | None:
    """A prefix for field names: letters, digits and ``_``, as Mona's field names take."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,64}", value):
        raise ValueError(f"must be letters, digits or '_' (at most 64), got {value!r}")
    return value


def _field_names(value: Any) -> Mapping[str, str | None]:
    if not isinstance(value, Mapping):
        raise TypeError(f"must be a dict of request field -> name, got {type(value).__name__}")
    unknown = set(value) - set(DEFAULT_FIELD_NAMES)
    if unknown:
        raise ValueError(f"unknown request field(s) {sorted(unknown)}")
    for field_name, new_name in value.items():  # sent as they are: never converted
        if new_name is not None and (not isinstance(new_name, str) or not new_name):
            raise ValueError(f"field_names[{field_name!r}] must be a non-empty string")
        if new_name is not None and new_name.startswith("MONA_"):
            raise ValueError(f"field_names[{field_name!r}]: MONA_... names are Mona's own")
    return MappingProxyType({**DEFAULT_FIELD_NAMES, **value})


@dataclass(frozen=True)
class WebOptions:
    """Adapter options, resolved like the exporter's: arguments, framework config, env."""

    context_class: str = option(
        DEFAULT_CONTEXT_CLASS, "MONA_MIDDLEWARE_CONTEXT_CLASS", non_empty_text,
        doc="the class of request contexts",
    )  # fmt: skip
    excluded_urls: tuple[re.Pattern[str], ...] = option(
        (), "MONA_MIDDLEWARE_EXCLUDED_URLS", _patterns,
        doc="regexes (comma-separated in the variable); a matching path passes through "
        "untouched",
    )  # fmt: skip
    context_id_header: str | None = option(
        None, "MONA_MIDDLEWARE_CONTEXT_ID_HEADER", text,
        shown_default="none (a new UUID)",
        doc="take the context id from this request header; any client can send it, so its "
        "value must be an id as incoming baggage ids are (at most 256 ASCII letters, digits "
        "and `._:@+=/~-`), else the request gets a new id and "
        "`stats()[\"context_id_headers_ignored\"]` counts it",
    )  # fmt: skip
    accept_incoming_context: bool = option(
        False, "MONA_MIDDLEWARE_ACCEPT_INCOMING_CONTEXT", boolean,
        doc="continue the context a request's `baggage` carries (same class and id) instead "
        "of opening one; off by default: a public endpoint must not let a caller write into "
        "someone else's context (see Across services)",
    )  # fmt: skip
    service_name: str | None = option(
        None, "MONA_MIDDLEWARE_SERVICE_NAME", _service_name,
        doc="in a continued context, this service's request fields go under "
        "`<service_name>_` (`features_http_route`); without it they are left out",
    )  # fmt: skip
    context_id_from_trace: bool = option(
        False, "MONA_MIDDLEWARE_CONTEXT_ID_FROM_TRACE", boolean,
        doc="the OpenTelemetry trace id (32 hex digits) is the context id, when the "
        "request's span is open as its context opens",
    )  # fmt: skip
    capture_headers: frozenset[str] = option(
        frozenset(), None, _header_names,
        doc="header names to record as `header_<name>`; names matching `auth\\|cookie"
        "\\|token\\|secret\\|passw\\|key\\|session\\|csrf\\|xsrf\\|signature\\|credential"
        "\\|jwt` are always `[REDACTED]`",
    )  # fmt: skip
    redact_headers: re.Pattern[str] | None = option(
        None, None, _redact_pattern,
        doc="a regex or a list of them (case-insensitive): redacts more headers, never fewer",
    )  # fmt: skip
    field_names: Mapping[str, str | None] = option(
        DEFAULT_FIELD_NAMES, None, _field_names, shown_default="see above",
        doc='rename (`{"route": "endpoint"}`) or drop (`{"duration_ms": None}`) request fields',
    )  # fmt: skip
    request_hook: RequestHook | None = option(
        None, None, callable_value,
        doc="called when the context opens: WSGI `(ctx, environ)`, ASGI `(ctx, scope)` "
        "(websocket connections too), "
        "Django and aiohttp `(ctx, request)`",
    )  # fmt: skip
    response_hook: ResponseHook | None = option(
        None, None, callable_value,
        doc="called with the response: WSGI `(ctx, environ, status, headers)`, ASGI "
        "`(ctx, scope, status, headers)`, Django and aiohttp `(ctx, request, response)`",
    )  # fmt: skip
    route_resolver: RouteResolver | None = option(
        None, None, callable_value,
        doc="`route_resolver(scope_or_environ) -> str or None`, called after the app ran: "
        "the route template where the framework offers none (plain ASGI/WSGI middlewares; "
        "None falls back to the framework's)",
    )  # fmt: skip
    before_send: BeforeSend | None = option(
        None, None, callable_value,
        doc="`before_send(message) -> message or None`: change or drop each wire message "
        "(runs on the exporter's thread)",
    )  # fmt: skip
    enabled: bool = option(
        True, None, boolean, doc="false: the middleware passes everything through"
    )
    handle_sigterm: bool = option(
        True, None, boolean, doc="let a plain `python app.py` flush on SIGTERM (see Shutdown)"
    )
    websockets: bool = option(
        True, "MONA_MIDDLEWARE_WEBSOCKETS", boolean,
        doc="one context per websocket connection (ASGI, Django Channels) with "
        "`messages_received`, `messages_sent`, `close_code`, `duration_ms`; false: they "
        "pass through untouched",
    )  # fmt: skip
    websocket_context_class: str = option(
        DEFAULT_WEBSOCKET_CONTEXT_CLASS, "MONA_MIDDLEWARE_WEBSOCKET_CONTEXT_CLASS",
        non_empty_text, doc="the class of websocket connection contexts",
    )  # fmt: skip
    flush_after_request: bool = option(
        False, "MONA_MIDDLEWARE_FLUSH_AFTER_REQUEST", boolean,
        doc="serverless (AWS Lambda): deliver each request's context before the response "
        "completes, within `shutdown_timeout`",
    )  # fmt: skip

    @classmethod
    def resolve(
        cls, options: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> WebOptions:
        """Options over ``env`` over defaults; an invalid one raises ``MonaConfigError``."""
        env = os.environ if env is None else env
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise MonaConfigError(unknown_options(unknown, OPTIONS))
        layers = [("option", options)]
        return cls(**{name: resolve(spec, layers, env, True) for name, spec in OPTIONS.items()})


OPTIONS: dict[str, Spec] = specs(WebOptions)
WEB_OPTIONS = frozenset(OPTIONS)
ALL_OPTIONS = WEB_OPTIONS | frozenset(CONFIG_OPTIONS)


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(adapter options, exporter options); an unknown name raises, naming it."""
    unknown = sorted(set(options) - ALL_OPTIONS)
    if unknown:
        raise MonaConfigError(unknown_options(unknown, ALL_OPTIONS))
    web = {k: v for k, v in options.items() if k in WEB_OPTIONS}
    return web, {k: v for k, v in options.items() if k not in WEB_OPTIONS}


def options_from_prefixed(config: Mapping[str, Any], prefix: str = "MONA_") -> dict[str, Any]:
    """Options from a framework config: ``MONA_CONTEXT_CLASS`` -> ``context_class``."""
    found = {}
    for name in ALL_OPTIONS:
        key = prefix + name.upper()
        if key in config:
            found[name] = config[key]
    return found


def _task_class(value: Any) -> str | None:
    return None if value is None else non_empty_text(value)


@dataclass(frozen=True)
class CeleryOptions:
    """``MonaCelery``'s options: arguments, then ``app.conf.mona_<option>``, then the env."""

    context_class: str | None = option(
        None, "MONA_MIDDLEWARE_TASK_CONTEXT_CLASS", _task_class,
        shown_default="the task's name", doc="the class of task contexts",
    )  # fmt: skip
    continue_context: bool = option(
        False, "MONA_MIDDLEWARE_CONTINUE_CONTEXT", boolean,
        doc="a task queued inside a context exports into that context (same class and id) "
        "instead of its own",
    )  # fmt: skip
    propagate_context: bool = option(
        True, "MONA_MIDDLEWARE_PROPAGATE_CONTEXT", boolean,
        doc="a task queued inside a context carries its class and id in the message headers",
    )  # fmt: skip
    excluded_tasks: tuple[re.Pattern[str], ...] = option(
        (), "MONA_MIDDLEWARE_EXCLUDED_TASKS", _patterns,
        doc="regexes (comma-separated in the variable); a matching task name is not recorded",
    )  # fmt: skip
    before_send: BeforeSend | None = option(
        None, None, callable_value,
        doc="`before_send(message) -> message or None`, as for the web adapters",
    )  # fmt: skip
    enabled: bool = option(True, None, boolean, doc="false: tasks run unrecorded")

    @classmethod
    def resolve(
        cls, options: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> CeleryOptions:
        """Options over ``env`` over defaults; an invalid one raises ``MonaConfigError``."""
        env = os.environ if env is None else env
        layers = [("option", options)]
        return cls(
            **{name: resolve(spec, layers, env, True) for name, spec in CELERY_OPTIONS.items()}
        )


CELERY_OPTIONS: dict[str, Spec] = specs(CeleryOptions)


def split_celery_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(task options, exporter options); an unknown name raises, naming it."""
    known = set(CELERY_OPTIONS) | set(CONFIG_OPTIONS)
    unknown = sorted(set(options) - known)
    if unknown:
        raise MonaConfigError(unknown_options(unknown, known))
    own = {k: v for k, v in options.items() if k in CELERY_OPTIONS}
    return own, {k: v for k, v in options.items() if k not in CELERY_OPTIONS}
