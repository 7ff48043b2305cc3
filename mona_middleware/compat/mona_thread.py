"""mona-client's ``MonaThread``: a thread that continues the context current at ``start()``.

    from mona_middleware.compat.mona_thread import MonaThread

mona-client took the context when the thread was started (this package's own
``mona_middleware.MonaThread`` takes it when the thread is created); this one keeps
mona-client's moment. The thread's exports go into that same context, even after the
starting thread closed it (they are then sent on their own, for the same context id).
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

__all__ = ["MonaThread"]


class MonaThread(threading.Thread):
    """A ``Thread`` that runs in the contexts open where ``start()`` was called."""

    def __init__(self, group: Any = None, target: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(group, target, *args, **kwargs)
        self._mona_context: contextvars.Context | None = None

    def start(self) -> None:
        self._mona_context = contextvars.copy_context()
        super().start()

    def run(self) -> None:
        captured = self._mona_context
        if captured is None:  # run() called directly, as Thread allows: the caller's context
            super().run()
        else:
            captured.run(super().run)
