"""Targets from the issue and the names tools go by in the report."""

from __future__ import annotations

# Issue 14: ratios taken in one run (absolute microseconds move with the shared machine).
TARGET_ADDED_RATIO = {"flask": 0.20, "django": 0.20, "starlette": 0.80}  # all-in added ÷ bare
TARGET_OTEL_FACTOR = 20.0  # OpenTelemetry's added cost ÷ ours, at least
TARGET_LIVE_CPU_RATIO = 1.10  # CPU per request, exporter live ÷ held back, at most
TARGET_RPS_RATIO = 0.95  # gunicorn + Flask
TARGET_RPS_RATIO_UVICORN = 0.93  # uvicorn + Starlette
TARGET_P99_ADDED_US = 1000.0
TARGET_MSGS_PER_S = 150_000
TARGET_MSGS_PER_POST = 500
TARGET_CONNECTIONS = 1
TARGET_BACKFILL_RATIO = 0.5  # the backfill loop with us ÷ without, at least
OTHERS = ("ours", "otel", "sentry", "mona_sdk")
LABELS = {
    "bare": "bare",
    "ours": "mona_middleware",
    "otel": "OpenTelemetry",
    "sentry": "Sentry",
    "mona_sdk": "mona_sdk",
}
