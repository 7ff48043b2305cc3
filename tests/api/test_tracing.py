"""``trace_id`` from OpenTelemetry: the recording span's, and nothing imported without it."""

from __future__ import annotations

import pytest

from mona_middleware._api.tracing import current_trace_id

from ..helpers import run_child

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
sampling = pytest.importorskip("opentelemetry.sdk.trace.sampling")


def test_the_recording_spans_trace_id_as_32_hex_digits():
    tracer = sdk_trace.TracerProvider().get_tracer("tests")
    assert current_trace_id() is None
    with tracer.start_as_current_span("request") as span:
        trace_id = current_trace_id()
        with tracer.start_as_current_span("child"):
            assert current_trace_id() == trace_id
    assert trace_id == f"{span.get_span_context().trace_id:032x}"
    assert len(trace_id) == 32 and int(trace_id, 16)
    assert current_trace_id() is None


def test_a_span_that_does_not_record_gives_none():
    provider = sdk_trace.TracerProvider(sampler=sampling.ALWAYS_OFF)
    with provider.get_tracer("tests").start_as_current_span("dropped"):
        assert current_trace_id() is None


def test_without_opentelemetry_in_use_a_request_imports_none_of_it():
    # installed in this environment, but the app never imported it: it stays unloaded
    child = run_child(
        """
        import sys
        import werkzeug.test
        import mona_middleware as mona
        from mona_middleware.transports import InMemoryTransport
        from mona_middleware.wsgi import MonaWSGIMiddleware

        transport = InMemoryTransport()
        mona.configure(transport=transport)

        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"ok"]

        client = werkzeug.test.Client(MonaWSGIMiddleware(
            app, handle_sigterm=False, context_id_from_trace=True, accept_incoming_context=True
        ))
        client.get("/", headers={"baggage": "mona.context_class=C,mona.context_id=r1"})
        client.get("/")
        mona.flush(5)
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        print(sorted(k for f in transport.contexts().values() for k in f if "trace" in k))
        """
    )
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out.splitlines() == ["[]", "[]"]
