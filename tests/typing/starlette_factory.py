"""Starlette's and FastAPI's way to add a middleware, checked by ``mypy --strict``
(``test_public_api.py``, expected to fail until ``MonaASGIMiddleware`` takes ``app``
positionally only: see the test's reason)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from mona_middleware.asgi import MonaASGIMiddleware

app = Starlette(middleware=[Middleware(MonaASGIMiddleware, context_class="SHOP_API")])
app.add_middleware(MonaASGIMiddleware, context_class="SHOP_API")
