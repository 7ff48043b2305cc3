"""Drop-in APIs for code written for Mona's own clients, so switching is one import line.

- ``from mona_middleware.compat import mona_sdk`` where the code had ``import mona_sdk``
  (``mona_sdk.Client``, ``AsyncClient``, ``MonaSingleMessage``, 0.0.58's signatures);
- ``from mona_middleware.compat import mona_client as client`` where it had
  ``from mona_client import client`` (mona-client 0.1/0.2's module API), and
  ``mona_middleware.compat.mona_thread.MonaThread``.

Both run on this package's contexts and exporter: queued on the caller's thread, sent in
batches over Mona's REST protocol by the exporter's threads. Importing this package loads
neither module.
"""

from __future__ import annotations

__all__: list[str] = []
