"""What every web adapter shares: its options, the request's context, the request fields.

Adapters stay thin: they call ``WebMonitor.start`` when a request arrives and
``WebMonitor.finish`` when its response is complete (sent, or built whole and handed to
the server), and fill in the few things only the framework knows (status, route
template, exception).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import _runtime
from ._log import limited, logger
from .config import OPTION_NAMES as CONFIG_OPTIONS
from .context import MonaContext, sample
from .errors import MonaConfigError

DEFAULT_CONTEXT_CLASS = "HTTP_REQUEST"
# Standard request fields and their default names; rename or drop (None) via field_names.
DEFAULT_FIELD_NAMES = MappingProxyType(
    {
        "method": "http_method",
        "route": "http_route",
        "status_code": "http_status_code",
        "duration_ms": "duration_ms",
        "exception": "exception_type",
    }
)
# Header names whose values are never captured verbatim, whatever capture_headers or
# redact_headers say: "auth" covers Authorization, Proxy-Authorization, X-Auth...; "key"
# X-Api-Key, X-Access-Key, Ocp-Apim-Subscription-Key. A header wrongly redacted costs a
# field; one wrongly captured leaks a credential into Mona.
DEFAULT_REDACT = re.compile(
    r"auth|cookie|token|secret|passw|passphrase|key|session|csrf|xsrf|signature|credential|jwt",
    re.IGNORECASE,
)
REDACTED = "[REDACTED]"
WEB_OPTIONS = frozenset(
    {
        "context_class",
        "excluded_urls",
        "request_hook",
        "response_hook",
        "before_send",
        "capture_headers",
        "redact_headers",
        "enabled",
        "context_id_header",
        "field_names",
        "handle_sigterm",
    }
)
ALL_OPTIONS = WEB_OPTIONS | frozenset(CONFIG_OPTIONS)


class RequestState:
    """The request's facts, filled in by the adapter while it runs (``ctx.request``)."""

    __slots__ = ("ended", "exception", "finished", "method", "route", "started", "status", "whole")

    def __init__(self, method: str) -> None:
        self.method = method
        self.route: str | None = None
        self.status: int | None = None
        self.exception: BaseException | None = None
        self.started = time.perf_counter()
        self.ended: float | None = None  # when the last byte went out, if known before finish
        self.finished = False
        self.whole = False  # the framework holds the whole body (Flask): close at teardown


@dataclass(frozen=True)
class WebOptions:
    """Adapter options, resolved like the exporter's: arguments, framework config, env."""

    context_class: str = DEFAULT_CONTEXT_CLASS
    excluded_urls: tuple[re.Pattern[str], ...] = ()
    request_hook: Callable[..., Any] | None = None
    response_hook: Callable[..., Any] | None = None
    before_send: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    capture_headers: frozenset[str] = frozenset()
    redact_headers: re.Pattern[str] | None = None  # redacted too, besides DEFAULT_REDACT
    enabled: bool = True
    context_id_header: str | None = None
    field_names: Mapping[str, str | None] = field(default_factory=lambda: DEFAULT_FIELD_NAMES)
    handle_sigterm: bool = True

    @classmethod
    def resolve(
        cls, options: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> WebOptions:
        env = os.environ if env is None else env
        values = dict(options)
        if "context_class" not in values and env.get("MONA_MIDDLEWARE_CONTEXT_CLASS"):
            values["context_class"] = env["MONA_MIDDLEWARE_CONTEXT_CLASS"]
        if "excluded_urls" not in values and env.get("MONA_MIDDLEWARE_EXCLUDED_URLS"):
            values["excluded_urls"] = env["MONA_MIDDLEWARE_EXCLUDED_URLS"]
        if "context_id_header" not in values and env.get("MONA_MIDDLEWARE_CONTEXT_ID_HEADER"):
            values["context_id_header"] = env["MONA_MIDDLEWARE_CONTEXT_ID_HEADER"]
        parsed = {}
        for name, value in values.items():
            try:
                parsed[name] = _parse(name, value)
            except (TypeError, ValueError, re.error) as exc:
                raise MonaConfigError(f"invalid mona_middleware option {name}: {exc}") from None
        return cls(**parsed)


def _split(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def _parse(name: str, value: Any) -> Any:
    if name == "context_class":
        if not isinstance(value, str) or not value:
            raise ValueError(f"context_class must be a non-empty string, got {value!r}")
        return value
    if name == "excluded_urls":
        return tuple(re.compile(pattern) for pattern in _split(value))
    if name == "capture_headers":
        return frozenset(header.lower() for header in _split(value))
    if name == "redact_headers":
        return _redact_pattern(value)
    if name == "field_names":
        unknown = set(value) - set(DEFAULT_FIELD_NAMES)
        if unknown:
            raise ValueError(f"field_names: unknown request field(s) {sorted(unknown)}")
        for field_name, new_name in value.items():  # sent as they are: never converted
            if new_name is not None and (not isinstance(new_name, str) or not new_name):
                raise ValueError(f"field_names[{field_name!r}] must be a non-empty string")
            if new_name is not None and new_name.startswith("MONA"):
                raise ValueError(f"field_names[{field_name!r}]: MONA... names are Mona's own")
        return MappingProxyType({**DEFAULT_FIELD_NAMES, **value})
    if name in ("request_hook", "response_hook", "before_send") and not callable(value):
        raise ValueError(f"{name} must be callable")
    if name in ("enabled", "handle_sigterm"):
        from .config import _bool

        return _bool(value)
    return value


def _redact_pattern(value: Any) -> re.Pattern[str] | None:
    """The user's extra redaction: a regex (str or compiled) or a list of them.

    Case-insensitive whatever its flags, as header names are compared lower-cased.
    """
    if value is None:
        return None
    if isinstance(value, re.Pattern):
        return re.compile(value.pattern, value.flags | re.IGNORECASE)
    if isinstance(value, (list, tuple, set, frozenset)):
        parts = sorted(p.pattern if isinstance(p, re.Pattern) else str(p) for p in value)
        value = "|".join(f"(?:{part})" for part in parts)
    if isinstance(value, str):
        return re.compile(value, re.IGNORECASE) if value else None
    raise TypeError(f"redact_headers must be a regex or a list of them, got {type(value).__name__}")


def redacted(name: str, extra: re.Pattern[str] | None = None) -> bool:
    """Whether header ``name``'s value is replaced by ``[REDACTED]``: the default or ``extra``.

    >>> redacted("x-auth"), redacted("x-internal", re.compile("internal")), redacted("accept")
    (True, True, False)
    """
    return bool(DEFAULT_REDACT.search(name) or (extra is not None and extra.search(name)))


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(adapter options, exporter options); an unknown name raises, naming it."""
    unknown = sorted(set(options) - ALL_OPTIONS)
    if unknown:
        raise MonaConfigError(f"unknown mona_middleware option(s): {', '.join(unknown)}")
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


class WebMonitor:
    """One per middleware: opens each request's context and closes it with the request fields.

    Exporter options among ``options`` (``api_key``, ``batch_size``...) configure the
    process-wide exporter, as ``mona_middleware.configure`` would.
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        web, exporter_options = split_options(options or {})
        if exporter_options:
            _runtime.configure(**exporter_options)
        self.options = WebOptions.resolve(web)
        names = self.options.field_names
        self._names = tuple(names[name] for name in DEFAULT_FIELD_NAMES)
        extra = self.options.redact_headers
        # (header, field, redacted), decided once: a request only looks its values up.
        self._captured = tuple(
            (name, "header_" + name.replace("-", "_"), redacted(name, extra))
            for name in sorted(self.options.capture_headers)
        )
        _runtime.resume_spool()
        if self.options.handle_sigterm:
            from .lifecycle import flush_on_sigterm

            flush_on_sigterm()

    def excluded(self, path: str) -> bool:
        return any(pattern.search(path) for pattern in self.options.excluded_urls)

    def start(
        self, method: str, path: str, header: Callable[[str], str | None]
    ) -> MonaContext | None:
        """Open a fresh context for this request (None when off or excluded); never raises."""
        options = self.options
        if not options.enabled or (options.excluded_urls and self.excluded(path)):
            return None
        config = _runtime.config()
        if config.disable_all or _runtime.disabled():
            return None  # the kill switch: pass through at near-zero cost
        try:
            context_id = None
            if options.context_id_header:
                given = header(options.context_id_header)
                if given and len(given) <= 256:
                    context_id = given
            ctx = MonaContext(options.context_class, context_id)
            sample(ctx, config)  # the switch and the class are checked already
            ctx.before_send = options.before_send
            ctx.request = RequestState(method)
            if options.capture_headers and not ctx.disabled:
                ctx.export(self.headers(header))
            return ctx.open()  # a new value for the var: never a context a server leaked
        except Exception:
            logger.exception("mona_middleware: could not open the request's context")
            return None

    def headers(self, header: Callable[[str], str | None]) -> dict[str, Any]:
        """Opted-in headers as fields, with credentials and cookies redacted."""
        fields = {}
        for name, key, redact in self._captured:
            value = header(name)
            if value is not None:
                fields[key] = REDACTED if redact else value
        return fields

    def call_hook(self, hook: Callable[..., Any] | None, *args: Any) -> None:
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            limited(
                40,
                f"hook:{hook!r}",
                "mona_middleware: %s raised; the request goes on",
                getattr(hook, "__qualname__", hook),
            )

    def finish(self, ctx: MonaContext) -> None:
        """Add the request fields and close the context: once, however the request ended."""
        state = ctx.request
        if state is None or state.finished:
            return
        state.finished = True
        if ctx.disabled:  # sampled out: nothing to record
            ctx.close()
            return
        try:
            method, route, status, duration, exception = self._names
            fields: dict[str, Any] = {}
            if method:
                fields[method] = state.method
            if route and state.route is not None:
                fields[route] = state.route
            error = state.exception
            if status:
                code = state.status
                if code is None and error is not None:
                    code = 500  # the app raised before it answered: the server sends a 500
                if code is not None:
                    fields[status] = code
            if duration:
                ended = state.ended or time.perf_counter()
                fields[duration] = round((ended - state.started) * 1000, 3)
            if exception and error is not None:
                fields[exception] = type(error).__name__
            ctx.record(fields)
        except Exception:
            logger.exception("mona_middleware: could not record the request's fields")
        finally:
            ctx.close()
