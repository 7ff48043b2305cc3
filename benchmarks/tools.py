"""Each monitoring tool set up as its documentation says, pointed at the local sinks.

Every tool records the same three groups of fields per request with its own API, so
the comparison is "monitor this request and these fields", not "do nothing vs something":

- ``ours``: ``MonaFlask`` / ``MonaMiddleware`` / ``MonaASGIMiddleware`` and three
  ``mona_middleware.export()`` calls; REST transport to the local Mona server, spool off,
  every other option at its default (batch 500, flush every second, 2 sender threads).
- ``otel``: ``TracerProvider`` + ``BatchSpanProcessor(OTLPSpanExporter(endpoint=sink))``
  (defaults: 512 spans per export, every 5 s, queue 2048), the framework's instrumentor,
  and ``span.set_attributes(fields)`` three times on the server span.
- ``sentry``: ``sentry_sdk.init(dsn=sink, traces_sample_rate=1.0)`` with its default
  integrations (Flask/Django/Starlette are enabled automatically) and
  ``sentry_sdk.update_current_span(attributes=fields)`` three times.
- ``mona_sdk``: one ``Client`` per process (token from the local Mona server) and one
  ``Client.export`` per request carrying all the fields: mona_sdk has no per-request
  context, so this is its cheapest correct use (three calls would be three round trips).
- ``bare``: no tool; the view builds the same fields and discards them.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

CONTEXT_CLASS = "BENCH_REQUEST"


def field_groups(item_id: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The three groups of fields a view records per request (one ``export()`` each)."""
    return (
        {"model_version": "v3", "item_id": item_id},
        {"score": 0.93, "item_count": 12},
        {"latency_ms": 1.25, "cache_hit": True},
    )


class Tool:
    """No monitoring at all; the base of every tool's hooks."""

    name = "bare"
    unit = ""  # what the sink counts for this tool

    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.endpoints = endpoints

    def before_app(self, framework: str) -> None:
        """Runs before the framework's app exists (SDKs that patch frameworks go here)."""

    def flask(self, app: Any) -> Any:
        return app

    def starlette_middleware(self) -> list[Any]:
        return []

    def starlette(self, app: Any) -> Any:
        return app

    def django_settings(self) -> dict[str, Any]:
        """Extra Django settings: ``MIDDLEWARE_FIRST`` is put at the head of MIDDLEWARE."""
        return {}

    def after_django_settings(self) -> None:
        """Runs once settings exist and before the WSGI handler loads the middleware."""

    def record(self, item_id: int) -> None:
        field_groups(item_id)

    def flush(self, timeout: float) -> bool:
        return True

    def expected(self, requests_served: int) -> int | None:
        """What the sink should receive for that many requests (None: nothing to receive)."""
        return None

    def received(self, stats: dict[str, Any]) -> int | None:
        return None

    def dropped(self) -> dict[str, Any]:
        """The tool's own account of what it dropped, when it keeps one."""
        return {}


class Ours(Tool):
    name = "ours"
    unit = "messages"

    def options(self) -> dict[str, Any]:
        mona = self.endpoints["mona"]
        return {
            "context_class": CONTEXT_CLASS,
            "api_key": mona["api_key"],
            "secret": mona["secret"],
            "auth_api_token_url": mona["token_url"],
            "refresh_token_url": mona["refresh_url"],
            "rest_api_url": mona["export_url"],
            "spool": False,
        }

    def before_app(self, framework: str) -> None:
        import mona_middleware

        self._export = mona_middleware.export

    def flask(self, app: Any) -> Any:
        from mona_middleware.flask import MonaFlask

        MonaFlask(app, **self.options())
        return app

    def starlette_middleware(self) -> list[Any]:
        from starlette.middleware import Middleware

        from mona_middleware.asgi import MonaASGIMiddleware

        return [Middleware(MonaASGIMiddleware, **self.options())]

    def django_settings(self) -> dict[str, Any]:
        return {
            "MIDDLEWARE_FIRST": ["mona_middleware.django.MonaMiddleware"],
            "MONA": self.options(),
        }

    def record(self, item_id: int) -> None:
        export = self._export
        for fields in field_groups(item_id):
            export(fields)

    def flush(self, timeout: float) -> bool:
        import mona_middleware

        return mona_middleware.flush(timeout)

    def expected(self, requests_served: int) -> int:
        return requests_served  # three OVERWRITE exports + request fields coalesce into one

    def received(self, stats: dict[str, Any]) -> int:
        return stats["mona"]["messages"]

    def dropped(self) -> dict[str, Any]:
        import mona_middleware

        stats = mona_middleware.stats()
        return {"dropped": stats.get("dropped"), "sent": stats.get("messages_sent")}


class _SpanCounter:
    """A span processor that only counts ended spans: the exact "expected" for the sink."""

    def __init__(self) -> None:
        self.ended = 0
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        with self._lock:
            self.ended += 1

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class OpenTelemetry(Tool):
    name = "otel"
    unit = "spans"

    def before_app(self, framework: str) -> None:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.counter = _SpanCounter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        self.provider.add_span_processor(self.counter)
        exporter = OTLPSpanExporter(endpoint=self.endpoints["otlp_traces"])
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(self.provider)
        self._current_span = trace.get_current_span

    def flask(self, app: Any) -> Any:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app)
        return app

    def starlette(self, app: Any) -> Any:
        from opentelemetry.instrumentation.starlette import StarletteInstrumentor

        StarletteInstrumentor.instrument_app(app)
        return app

    def after_django_settings(self) -> None:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument()

    def record(self, item_id: int) -> None:
        span = self._current_span()
        for fields in field_groups(item_id):
            span.set_attributes(fields)

    def flush(self, timeout: float) -> bool:
        return self.provider.force_flush(int(timeout * 1000))

    def expected(self, requests_served: int) -> int:
        return self.counter.ended

    def received(self, stats: dict[str, Any]) -> int:
        return stats["otlp"]["spans"]


class Sentry(Tool):
    name = "sentry"
    unit = "transactions"

    def before_app(self, framework: str) -> None:
        import sentry_sdk

        sentry_sdk.init(dsn=self.endpoints["sentry_dsn"], traces_sample_rate=1.0)
        self._update = sentry_sdk.update_current_span

    def record(self, item_id: int) -> None:
        update = self._update
        for fields in field_groups(item_id):
            update(attributes=fields)

    def flush(self, timeout: float) -> bool:
        import sentry_sdk

        sentry_sdk.flush(timeout)
        return True

    def expected(self, requests_served: int) -> int:
        return requests_served

    def received(self, stats: dict[str, Any]) -> int:
        return stats["sentry"]["transactions"]

    def dropped(self) -> dict[str, Any]:
        return {}  # reported by the SDK itself in client_report envelopes (see the sink)


class MonaSdk(Tool):
    name = "mona_sdk"
    unit = "messages"

    def before_app(self, framework: str) -> None:
        from mona_sdk.client import Client, MonaSingleMessage

        mona = self.endpoints["mona"]
        self._message = MonaSingleMessage
        self.client = Client(
            mona["api_key"],
            mona["secret"],
            auth_api_token_url=mona["token_url"],
            refresh_token_url=mona["refresh_url"],
            override_rest_api_full_url=mona["export_url"],
        )

    def record(self, item_id: int) -> None:
        fields: dict[str, Any] = {}
        for group in field_groups(item_id):
            fields.update(group)
        self.client.export(
            self._message(message=fields, contextClass=CONTEXT_CLASS, contextId=str(uuid.uuid4()))
        )

    def expected(self, requests_served: int) -> int:
        return requests_served

    def received(self, stats: dict[str, Any]) -> int:
        return stats["mona"]["messages"]


TOOL_CLASSES: dict[str, type[Tool]] = {
    "bare": Tool,
    "ours": Ours,
    "otel": OpenTelemetry,
    "sentry": Sentry,
    "mona_sdk": MonaSdk,
}
# What each tool needs importable; a tool whose module is missing is skipped and said so.
REQUIRES = {
    "bare": (),
    "ours": ("mona_middleware",),
    "otel": (
        "opentelemetry.sdk",
        "opentelemetry.exporter.otlp.proto.http",
        "opentelemetry.instrumentation.flask",
        "opentelemetry.instrumentation.django",
        "opentelemetry.instrumentation.starlette",
    ),
    "sentry": ("sentry_sdk",),
    "mona_sdk": ("mona_sdk",),
}


def available(tool: str) -> bool:
    import importlib.util

    try:
        return all(importlib.util.find_spec(module) for module in REQUIRES[tool])
    except ModuleNotFoundError:
        return False


def make_tool(name: str, endpoints: dict[str, Any]) -> Tool:
    return TOOL_CLASSES[name](endpoints)
