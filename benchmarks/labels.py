"""Targets from the issue and the names tools go by in the report."""

from __future__ import annotations

TARGET_ALLIN_US = 20.0
TARGET_RPS_RATIO = 0.95
TARGET_P99_ADDED_US = 1000.0
TARGET_MSGS_PER_S = 50_000
TARGET_MSGS_PER_POST = 100
OTHERS = ("ours", "otel", "sentry", "mona_sdk")
LABELS = {
    "bare": "bare",
    "ours": "mona_middleware",
    "otel": "OpenTelemetry",
    "sentry": "Sentry",
    "mona_sdk": "mona_sdk",
}
