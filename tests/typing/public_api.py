"""The public API as users call it, checked by ``mypy --strict`` (``test_public_api.py``).

Never imported or run: only type-checked. Each ``assert_type`` states what a user's
editor and type checker should see; an untyped name (``Any``) or a wrong signature
fails the test, not a user's CI.
"""

from __future__ import annotations

import asyncio
from typing import Any

import flask
from typing_extensions import assert_type

import mona_middleware as mona
from mona_middleware import MonaConfig, MonaContext
from mona_middleware.asgi import MonaASGIMiddleware, MonaLifespan, Receive, Scope, Send
from mona_middleware.django import MonaMiddleware
from mona_middleware.flask import MonaFlask
from mona_middleware.testing import MonaCapture
from mona_middleware.wsgi import MonaWSGIMiddleware

# -- the core: contexts, exports, control


def score(features: dict[str, float]) -> float:
    with mona.context("FRAUD_MODEL", context_id="txn-42") as ctx:
        assert_type(ctx, MonaContext)
        assert_type(ctx.context_id, str)
        assert_type(mona.export({"score": 0.93, "model_version": "v3"}), bool)
        assert_type(mona.export({"tags": ["a"]}, action="ADD"), bool)
        with mona.sub_context("RANKER", sub_id="r1") as sub:
            assert_type(sub, MonaContext)
        assert_type(mona.current_context(), MonaContext | None)
    return 0.93


async def score_async() -> None:
    async with mona.context("ASYNC_MODEL") as ctx:
        assert_type(ctx, MonaContext)


@mona.monitor("NIGHTLY_JOB", fields={"team": "ml"})
def nightly(rows: int) -> int:
    return rows


@mona.monitor
def bare(name: str) -> str:
    return name


@mona.monitor("PREDICTIONS", flush=True)
async def predict(item_id: int) -> dict[str, Any]:
    return {"item_id": item_id}


def decorated_functions_keep_their_types() -> None:
    assert_type(nightly(10), int)
    assert_type(bare("x"), str)
    assert_type(asyncio.run(predict(1)), dict[str, Any])


def control() -> None:
    assert_type(mona.configure(api_key="key", secret="secret"), MonaConfig)
    assert_type(mona.flush(), bool)
    assert_type(mona.flush(timeout=2.0), bool)
    assert_type(mona.shutdown(), bool)
    assert_type(mona.stats(), dict[str, Any])
    assert_type(mona.outgoing_headers({"accept": "application/json"}), dict[str, str])
    assert_type(mona.export_batch([{"contextClass": "C", "message": {"a": 1}}]), int)
    assert_type(mona.wrap(nightly)(3), int)
    thread = mona.MonaThread(target=nightly, args=(1,))
    thread.start()


# -- the adapters


def flask_app() -> flask.Flask:
    app = flask.Flask("shop")
    MonaFlask(app, context_class="SHOP_API")
    later = MonaFlask(context_class="SHOP_API")
    later.init_app(app)
    assert_type(MonaFlask.recorder(app).options.context_class, str)
    return app


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


wrapped_wsgi = MonaWSGIMiddleware(wsgi_app, context_class="HELLO")


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


wrapped_asgi = MonaASGIMiddleware(asgi_app, context_class="HELLO", excluded_urls=["^/health$"])
with_lifespan = MonaLifespan(asgi_app)


def django_view(request: Any) -> Any:
    return request


django_middleware = MonaMiddleware(django_view)


# -- the pytest plugin


def test_predict(mona_capture: MonaCapture) -> None:
    mona_capture.clear()
    assert_type(mona_capture.only("PREDICT"), dict[str, Any])
    assert_type(mona_capture.messages, list[dict[str, Any]])
    found = mona_capture.contexts("PREDICT")
    assert_type(found, dict[tuple[str, str | None], dict[str, Any]])
