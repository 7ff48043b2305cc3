"""A local, Mona-compatible collector: token and export endpoints, SQLite, a browser UI.

It lets a developer see what their app sends to Mona without a Mona account, and lets
tests assert on aggregated contexts over real HTTP. Standard library only.

>>> from mona_middleware.collector import Collector     # doctest: +SKIP
>>> with Collector() as collector:
...     print(collector.env()["MONA_SDK_OVERRIDE_REST_API_URL"])
"""

from __future__ import annotations

from .app import Collector, is_loopback
from .main import run_collector
from .store import Store

__all__ = ["Collector", "Store", "is_loopback", "run_collector"]
