"""OpenTelemetry correlation: the trace id of the span the request runs in, if any.

OpenTelemetry is never imported here: an app that traces has imported
``opentelemetry.trace`` already (no span can be recording otherwise), so looking it up
in ``sys.modules`` finds it, and costs one dict look-up in an app that does not trace.
"""

from __future__ import annotations

import sys

__all__ = ["TRACE_MODULE", "current_trace_id"]

TRACE_MODULE = "opentelemetry.trace"


def current_trace_id() -> str | None:
    """The current recording span's trace id as 32 hex digits, or None.

    >>> current_trace_id() is None  # no OpenTelemetry, or no span recording
    True
    """
    trace = sys.modules.get(TRACE_MODULE)
    if trace is None:
        return None
    try:
        span = trace.get_current_span()
        if not span.is_recording():
            return None
        trace_id = span.get_span_context().trace_id
    except Exception:  # a broken or foreign tracer: no correlation, never an error
        return None
    return f"{trace_id:032x}" if trace_id else None
