"""FastAPI: dependencies, ``@monitor``, sync and async endpoints, background tasks, load."""

from __future__ import annotations

import asyncio
from typing import Annotated

import pytest

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI  # noqa: E402

import mona_middleware as mona  # noqa: E402
from mona_middleware.asgi import MonaASGIMiddleware  # noqa: E402

from .helpers import TestClient, only  # noqa: E402


class Model:
    version = "v3"


def get_model() -> Model:
    mona.export({"model_version": Model.version})
    return Model()


def make_app(**options) -> FastAPI:
    app = FastAPI()
    app.add_middleware(MonaASGIMiddleware, handle_sigterm=False, **options)

    @app.post("/predict/{user_id}")
    @mona.monitor("PREDICTIONS", fields={"model_family": "ranker"})
    async def predict(
        user_id: int, background: BackgroundTasks, model: Annotated[Model, Depends(get_model)]
    ) -> dict:
        background.add_task(lambda: mona.export({"feedback": "queued"}))
        mona.export({"user_id": user_id})
        return {"user": user_id, "model": model.version}

    @app.get("/sync/{n}")
    def sync_endpoint(n: int) -> dict:  # runs in the thread pool
        mona.export({"sync": n})
        return {"n": n}

    @app.get("/fail")
    async def fail() -> None:
        raise KeyError("feature missing")

    router = APIRouter(prefix="/v1")

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        mona.export({"item_id": item_id})
        return {"id": item_id}

    app.include_router(router)
    sub = FastAPI()

    @sub.get("/models/{name}")
    async def model(name: str) -> dict:
        mona.export({"model": name})
        return {"name": name}

    app.mount("/tenants/{tenant}", sub)
    return app


def test_dependency_monitor_and_background_task_share_the_request_context(memory):
    client = TestClient(make_app(context_class="API"))
    assert client.post("/predict/42").json() == {"user": 42, "model": "v3"}
    assert mona.flush(5)
    ((key, fields),) = memory.contexts().items()
    assert key[0] == "PREDICTIONS"  # @monitor names the request's context
    fields.pop("duration_ms")
    assert fields == {
        "model_version": "v3",
        "model_family": "ranker",
        "user_id": 42,
        "feedback": "queued",
        "http_method": "POST",
        "http_route": "/predict/{user_id}",
        "http_status_code": 200,
    }
    assert len(memory.messages) == 1


def test_monitor_keeps_the_signature_so_validation_still_works(memory):
    app = make_app()
    response = TestClient(app).post("/predict/not-a-number")
    assert response.status_code == 422
    (param,) = app.openapi()["paths"]["/predict/{user_id}"]["post"]["parameters"]
    assert param["name"] == "user_id"  # not `background` or `model` as query parameters
    assert only(memory, http_status_code=422)["http_route"] == "/predict/{user_id}"


def test_sync_endpoint_router_prefix_and_mounted_sub_app(memory):
    client = TestClient(make_app())
    assert client.get("/sync/5").json() == {"n": 5}
    assert client.get("/v1/items/9").json() == {"id": 9}
    assert client.get("/tenants/acme/models/ranker").json() == {"name": "ranker"}
    assert only(memory, sync=5)["http_route"] == "/sync/{n}"
    assert only(memory, item_id=9)["http_route"] == "/v1/items/{item_id}"
    assert only(memory, model="ranker")["http_route"] == "/tenants/{tenant}/models/{name}"


def test_an_exception_is_a_500_with_its_type(memory):
    with pytest.raises(KeyError):
        TestClient(make_app()).get("/fail")
    assert TestClient(make_app(), raise_server_exceptions=False).get("/fail").status_code == 500
    assert mona.flush(5)
    for fields in memory.contexts().values():
        assert (fields["exception_type"], fields["http_status_code"]) == ("KeyError", 500)


def test_five_hundred_concurrent_requests_each_keep_their_own_value(memory):
    app = FastAPI()
    app.add_middleware(MonaASGIMiddleware, handle_sigterm=False)
    arrived, everyone_in = 0, asyncio.Event()

    @app.get("/v/{n}")
    async def value(n: int) -> int:
        nonlocal arrived
        mona.export({"n": n})
        arrived += 1
        if arrived == 500:
            everyone_in.set()
        await asyncio.wait_for(everyone_in.wait(), 20)  # all 500 contexts open at once
        mona.export({"echo": n})
        return n

    async def main() -> list:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.get(f"/v/{n}") for n in range(500)))

    responses = asyncio.run(main())
    assert [r.json() for r in responses] == list(range(500))
    assert mona.flush(10)
    contexts = list(memory.contexts().values())
    assert len(contexts) == 500
    assert all(fields["n"] == fields["echo"] for fields in contexts)
    assert sorted(fields["n"] for fields in contexts) == list(range(500))
    assert {fields["http_route"] for fields in contexts} == {"/v/{n}"}
