"""What every web adapter shares: its options, the request's context, the request fields.

Adapters stay thin: they call ``WebMonitor.start`` when a request arrives and
``WebMonitor.finish`` when its response is complete (sent, or built whole and handed to
the server), and fill in the few things only the framework knows (status, route
template, exception).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._api.context import MonaContext, sample
from .._runtime import process, signals
from .._util.log import Guard, limited
from .options import DEFAULT_FIELD_NAMES, WebOptions, split_options

__all__ = ["REDACTED", "RequestState", "WebMonitor", "redacted"]

_OPEN = Guard("could not open the request's context")
_RECORD = Guard("could not record the request's fields")
_FLUSH = Guard("could not flush after the request")

# Header names whose values are never captured verbatim, whatever capture_headers or
# redact_headers say: "auth" covers Authorization, Proxy-Authorization, X-Auth...; "key"
# X-Api-Key, X-Access-Key, Ocp-Apim-Subscription-Key. A header wrongly redacted costs a
# field; one wrongly captured leaks a credential into Mona.
DEFAULT_REDACT = re.compile(
    r"auth|cookie|token|secret|passw|passphrase|key|session|csrf|xsrf|signature|credential|jwt",
    re.IGNORECASE,
)
REDACTED = "[REDACTED]"


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


def redacted(name: str, extra: re.Pattern[str] | None = None) -> bool:
    """Whether header ``name``'s value is replaced by ``[REDACTED]``: the default or ``extra``.

    >>> redacted("x-auth"), redacted("x-internal", re.compile("internal")), redacted("accept")
    (True, True, False)
    """
    return bool(DEFAULT_REDACT.search(name) or (extra is not None and extra.search(name)))


class WebMonitor:
    """One per middleware: opens each request's context and closes it with the request fields.

    Exporter options among ``options`` (``api_key``, ``batch_size``...) configure the
    process-wide exporter, as ``mona_middleware.configure`` would.
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        web, exporter_options = split_options(options or {})
        if exporter_options:
            process.configure(**exporter_options)
        self.options = WebOptions.resolve(web)
        names = self.options.field_names
        self._names = tuple(names[name] for name in DEFAULT_FIELD_NAMES)
        extra = self.options.redact_headers
        # (header, field, redacted), decided once: a request only looks its values up.
        self._captured = tuple(
            (name, "header_" + name.replace("-", "_"), redacted(name, extra))
            for name in sorted(self.options.capture_headers)
        )
        self.flush_after = self.options.flush_after_request
        process.resume_spool()
        if self.options.handle_sigterm:
            signals.flush_on_sigterm()

    def excluded(self, path: str) -> bool:
        return any(pattern.search(path) for pattern in self.options.excluded_urls)

    def start(
        self, method: str, path: str, header: Callable[[str], str | None]
    ) -> MonaContext | None:
        """Open a fresh context for this request (None when off or excluded); never raises."""
        options = self.options
        if not options.enabled or (options.excluded_urls and self.excluded(path)):
            return None
        config = process.config()
        if config.disable_all or process.disabled():
            return None  # the kill switch: pass through at near-zero cost
        ctx = None
        try:  # a guarded site (see Guard): try is free on this path, a with is not
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
        except Exception as exc:
            _OPEN.caught(exc)
        if ctx is not None:
            ctx.disabled = True  # half made: never sent
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

    def finish(self, ctx: MonaContext, flush: bool = True) -> None:
        """Add the request fields and close the context: once, however the request ended.

        With ``flush_after_request`` it is delivered before this returns (``flush``
        False: the caller flushes, e.g. off the event loop).
        """
        state = ctx.request
        if state is None or state.finished:
            return
        state.finished = True
        if ctx.disabled:  # sampled out: nothing to record
            ctx.close()
            return
        try:  # a guarded site (see Guard)
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
        except Exception as exc:
            _RECORD.caught(exc)
        ctx.close()
        if self.flush_after and flush:
            self.flush_now()

    def flush_now(self) -> None:
        """Deliver what this process holds, within ``shutdown_timeout`` (serverless)."""
        try:
            process.flush(process.config().shutdown_timeout)
        except Exception as exc:
            _FLUSH.caught(exc)
