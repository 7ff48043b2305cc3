"""What every web adapter shares: its options, the request's context, the request fields.

Adapters stay thin: they call ``WebRecorder.start`` when a request arrives and
``WebRecorder.finish`` when its response is complete (sent, or built whole and handed to
the server), and fill in the few things only the framework knows (status, route
template, exception).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._api.context import MonaContext, sample
from .._api.propagation import BAGGAGE, header_context_id, incoming_context
from .._api.tracing import TRACE_MODULE, current_trace_id
from .._runtime import process, signals
from .._util.log import Guard, limited
from .options import DEFAULT_FIELD_NAMES, WebOptions, split_options

if TYPE_CHECKING:
    from ..config import MonaConfig

__all__ = [
    "REDACTED",
    "ConnectionState",
    "RequestState",
    "WebContext",
    "WebRecorder",
    "redacted",
]

_MODULES = sys.modules  # OpenTelemetry is in use only once the app has imported it
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


def _ms(seconds: float) -> float:
    """Milliseconds to the microsecond: ``round(x, 3)`` formats and parses a string."""
    return int(seconds * 1_000_000 + 0.5) / 1000


class RequestState:
    """The request's facts, filled in by the adapter while it runs (``ctx.request``).

    A live web request (``live_request``): with the exporter's queue full, its context
    waits only ``request_queue_wait`` for room (see ``MonaContext.in_request``).
    """

    live_request = True  # a class attribute: nothing to set per request

    __slots__ = (
        "continued",
        "ended",
        "exception",
        "finished",
        "method",
        "route",
        "started",
        "status",
        "trace_id",
        "whole",
    )

    def __init__(self, method: str) -> None:
        self.method = method
        self.continued = False  # the caller's context (accept_incoming_context)
        self.trace_id: str | None = None  # OpenTelemetry's, when a span is recording
        self.route: str | None = None
        self.status: int | None = None
        self.exception: BaseException | None = None
        self.started = time.perf_counter()
        self.ended: float | None = None  # when the last byte went out, if known before finish
        self.finished = False
        self.whole = False  # the framework holds the whole body (Flask): close at teardown


class ConnectionState(RequestState):
    """A websocket connection's facts: messages each way and how it closed."""

    __slots__ = ("accepted", "close_code", "received", "sent")

    def __init__(self, method: str) -> None:
        super().__init__(method)
        self.received = 0
        self.sent = 0
        self.close_code: int | None = None
        self.accepted = False


if TYPE_CHECKING:

    class WebContext(MonaContext):
        """A request's (or a websocket connection's) context, as ``WebRecorder.start``
        opens it: a ``MonaContext`` whose host state is the request's own, typed for the
        adapters that fill it in (the core reads it as a ``HostState``)."""

        request: RequestState

else:
    # The same class at run time: a name for the type checker only (no subclass to
    # look methods up through on the request's path).
    WebContext = MonaContext


def _method_text(method: object) -> str:
    """A request method that is not a ``str``: its text when it is a ``str`` subclass or
    ASCII bytes, else ``_OTHER`` (OpenTelemetry's name for a method it cannot name)."""
    if isinstance(method, bytes):
        method = method.decode("latin-1")
    if isinstance(method, str) and str.__len__(method) <= 32:
        return str.__str__(method)
    return "_OTHER"


def redacted(name: str, extra: re.Pattern[str] | None = None) -> bool:
    """Whether header ``name``'s value is replaced by ``[REDACTED]``: the default or ``extra``.

    >>> redacted("x-auth"), redacted("x-internal", re.compile("internal")), redacted("accept")
    (True, True, False)
    """
    return bool(DEFAULT_REDACT.search(name) or (extra is not None and extra.search(name)))


class WebRecorder:
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
        resolved = self.options
        # Decided once. Without these options no header is read: adapters may pass no
        # header lookup, and start() takes its short path (the context and its state).
        self.reads_headers = bool(
            resolved.accept_incoming_context
            or resolved.context_id_header
            or resolved.capture_headers
        )
        self._gated = not resolved.enabled or bool(resolved.excluded_urls)
        self._all_named = all(self._names)  # no field renamed away: finish()'s short path
        process.resume_spool()
        if self.options.handle_sigterm:
            signals.flush_on_sigterm()

    def excluded(self, path: str) -> bool:
        return any(pattern.search(path) for pattern in self.options.excluded_urls)

    def start(
        self,
        method: str,
        path: str,
        header: Callable[[str], str | None] | None,
        *,
        websocket: bool = False,
    ) -> WebContext | None:
        """Open a fresh context for this request (None when off or excluded); never raises.

        ``websocket``: a connection's context (``websocket_context_class``, its own fields),
        None when the ``websockets`` option is off.
        """
        options = self.options
        if type(method) is not str:  # a server's bug: the field must still be JSON text
            method = _method_text(method)
        if self._gated and (not options.enabled or (type(path) is str and self.excluded(path))):
            return None
        if websocket and not options.websockets:
            return None
        runtime = process.STATE  # config() and switched_off() inlined: no call here
        config, watcher = runtime.config, runtime.watcher
        if config is None:
            config = process.config()
        if config.disable_all or (watcher is not None and watcher.disabled):
            return None  # switched off: pass through at near-zero cost
        ctx: WebContext | None  # (an annotation: no code)
        if not self.reads_headers and not websocket and TRACE_MODULE not in _MODULES:
            try:  # the common request: a new context and its state, nothing else to read
                ctx = WebContext(options.context_class)
                if config.samples:
                    sample(ctx, config)
                ctx.before_send = options.before_send
                ctx.request = RequestState(method)
                return ctx.open()
            except Exception as exc:
                _OPEN.caught(exc)
                return None
        return self._start_general(method, header, websocket, config)

    def _start_general(
        self,
        method: str,
        header: Callable[[str], str | None] | None,
        websocket: bool,
        config: MonaConfig,
    ) -> WebContext | None:
        """``start`` beyond the common request: headers read, OpenTelemetry, a websocket."""
        options = self.options
        ctx: WebContext | None = None
        # ``header`` is None only when no option reads headers (``reads_headers``): the
        # lookups below are behind those options, hence the ignores (no check to pay).
        try:  # a guarded site (see Guard): try is free on this path, a with is not
            context_class, context_id, continued = options.context_class, None, False
            if options.accept_incoming_context:
                incoming = incoming_context(header(BAGGAGE))  # type: ignore[misc]  # validated; bad ones counted
                if incoming is not None:
                    context_class, context_id = incoming
                    continued = True
            if context_id is None and options.context_id_header:
                context_id = header_context_id(header(options.context_id_header))  # type: ignore[misc]
            if websocket and not continued:
                context_class = options.websocket_context_class
            trace_id = current_trace_id() if TRACE_MODULE in _MODULES else None
            if context_id is None and trace_id is not None and options.context_id_from_trace:
                context_id = trace_id
            ctx = WebContext(context_class, context_id)
            sample(ctx, config)  # the switch and the class are checked already
            ctx.before_send = options.before_send
            state = ctx.request = ConnectionState(method) if websocket else RequestState(method)
            state.continued = continued
            state.trace_id = trace_id
            if options.capture_headers and not ctx.disabled:
                fields = self.headers(header)  # type: ignore[arg-type]
                ctx.export(self.own_fields(fields) if continued else fields)
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

    def own_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """This service's request fields in a context it continues: they never overwrite
        the caller's, so they go under ``<service_name>_``, or are left out without one."""
        prefix = self.options.service_name
        if prefix is None:
            return {}
        return {f"{prefix}_{name}": value for name, value in fields.items()}

    def call_hook(self, hook: Callable[..., Any] | None, *args: Any) -> None:
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            limited(
                logging.ERROR,
                f"hook:{hook!r}",
                "mona_middleware: %s raised; the request goes on",
                getattr(hook, "__qualname__", hook),
            )

    def finish(self, ctx: WebContext, flush: bool = True) -> None:
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
            method, route, status, duration, _, _ = self._names  # the rest: _general_fields()
            if (
                self._all_named
                and type(state) is RequestState
                and state.status is not None
                and state.exception is None
                and not state.continued
                and state.trace_id is None
                and TRACE_MODULE not in _MODULES
            ):  # the common request, answered without an error: the same fields, built at once
                took = (state.ended or time.perf_counter()) - state.started
                took = int(took * 1_000_000 + 0.5) / 1000  # _ms(), without the call
                path = state.route
                # The names are all given on this path (_all_named): no None key.
                fields: dict[str, Any] = (
                    {method: state.method, status: state.status, duration: took}  # type: ignore[dict-item]
                    if path is None
                    else {method: state.method, route: path, status: state.status, duration: took}  # type: ignore[dict-item]
                )
                ctx.record(fields)
                ctx.close()
                if self.flush_after and flush:
                    self.flush_now()
                return
            ctx.record(self._general_fields(state))
        except Exception as exc:
            _RECORD.caught(exc)
        ctx.close()
        if self.flush_after and flush:
            self.flush_now()

    def _general_fields(self, state: RequestState) -> dict[str, Any]:
        """``finish``'s fields beyond the common request: each by its (renamed) name, for a
        connection, an exception, a trace id or a continued context."""
        method, route, status, duration, exception, trace = self._names
        fields: dict[str, Any] = {}
        if type(state) is ConnectionState:
            method = status = None  # a connection has no status; its method is GET
            fields["messages_received"] = state.received
            fields["messages_sent"] = state.sent
            if state.close_code is not None:
                fields["close_code"] = state.close_code
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
            fields[duration] = _ms(ended - state.started)
        if exception and error is not None:
            fields[exception] = type(error).__name__
        if trace and (state.trace_id is not None or TRACE_MODULE in _MODULES):
            trace_id = state.trace_id or current_trace_id()  # a span opened after us
            if trace_id is not None:
                fields[trace] = trace_id
        if state.continued:
            fields = self.own_fields(fields)
        return fields

    def flush_now(self) -> None:
        """Deliver what this process holds, within ``shutdown_timeout`` (serverless)."""
        try:
            process.flush(process.config().shutdown_timeout)
        except Exception as exc:
            _FLUSH.caught(exc)
