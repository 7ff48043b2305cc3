"""A pytest plugin that adds our middleware to every app a framework's own test suite builds.

    PYTHONPATH=<repo>/benchmarks python -m pytest -p mona_everywhere tests/   # in the sdist

Starlette (and FastAPI): ``Middleware(MonaASGIMiddleware)`` outermost among the user's
middleware, as ``app.add_middleware`` puts it, whenever an app builds its stack (the app's
``user_middleware`` itself is left as the test made it). aiohttp: ``instrument(app)`` on
every ``web.Application``. The exporter sends to memory (``MONA_MIDDLEWARE_TRANSPORT``,
unless set); at the end the terminal summary says how many contexts were closed, sent
and dropped, and how many errors our logger logged. ``framework_suites`` runs a suite
with and without this plugin and compares the two test by test.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

os.environ.setdefault("MONA_MIDDLEWARE_TRANSPORT", "memory")


class _Errors(logging.Handler):
    """Counts what our logger logs at ERROR and above (and keeps the first lines)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 5:
            self.first.append(record.getMessage()[:200])


_ERRORS = _Errors()
_PATCHED: list[str] = []


def _patch_starlette() -> None:
    try:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
    except ImportError:
        return
    from mona_middleware.asgi import MonaASGIMiddleware

    build = Starlette.build_middleware_stack

    def build_middleware_stack(self: Any) -> Any:
        mine = self.user_middleware
        if not any(m.cls is MonaASGIMiddleware for m in mine):
            self.user_middleware = [Middleware(MonaASGIMiddleware), *mine]
        try:
            return build(self)
        finally:
            self.user_middleware = mine

    Starlette.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    _PATCHED.append("starlette")


def _patch_aiohttp() -> None:
    try:
        from aiohttp import web
    except ImportError:
        return
    import mona_middleware.aiohttp

    init = web.Application.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        mona_middleware.aiohttp.instrument(self, handle_sigterm=False)

    web.Application.__init__ = __init__  # type: ignore[method-assign]
    _PATCHED.append("aiohttp")


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("mona_middleware").addHandler(_ERRORS)
    _patch_starlette()
    _patch_aiohttp()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    import mona_middleware as mona

    mona.flush(10)
    stats = mona.stats()
    terminalreporter.write_line(
        f"mona_everywhere: added to {', '.join(_PATCHED) or 'nothing'}; "
        f"contexts {stats['contexts']}, sent {stats['messages_sent']}, "
        f"dropped {stats['dropped']}, queued {stats['queued']}, "
        f"errors logged by mona_middleware {_ERRORS.count} {_ERRORS.first}"
    )
