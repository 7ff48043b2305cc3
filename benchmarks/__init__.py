"""Benchmarks of mona_middleware against bare apps, OpenTelemetry, Sentry and mona_sdk.

Run everything (about 15 minutes on 2 cores) and rewrite ``RESULTS.md`` and the chart::

    python -m benchmarks            # or: python benchmarks/run.py
    python -m benchmarks --quick    # fewer rounds and requests, a few minutes
    python -m benchmarks --smoke    # seconds: keeps the harness from rotting (CI)

Every measurement runs in its own subprocess against local sinks on 127.0.0.1, so tools
that patch frameworks globally (Sentry, OpenTelemetry) never meet each other.
"""
