"""Django Channels consumers behind ``websocket_application``: one context per connection,
driven by Channels' own ``WebsocketCommunicator``; options come from ``settings.MONA``."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("channels")

from channels.testing import WebsocketCommunicator
from django.test.utils import override_settings

import mona_middleware as mona
from mona_middleware.django import websocket_application
from mona_middleware.django.websockets import channels_route

from .conftest import BASE_MONA
from .consumers import router


def connections(transport) -> list[dict]:
    assert mona.flush(5)
    found = []
    for (cls, _), fields in transport.contexts().items():
        assert cls == "WEBSOCKET", (cls, fields)
        assert fields.pop("duration_ms") > 0
        found.append(fields)
    return sorted(found, key=lambda f: f["http_route"])


def run(coroutine) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))


async def chat(app, path: str, texts: list[str], close: int = 1001) -> list:
    communicator = WebsocketCommunicator(app, path)
    connected, _ = await communicator.connect()
    assert connected
    answers = []
    for text in texts:
        await communicator.send_to(text_data=text)
        answers.append(await communicator.receive_output())
    await communicator.disconnect(code=close)  # after a server's close, as servers do
    return answers


def test_async_and_sync_consumers_each_one_context(memory):
    app = websocket_application(router)

    async def traffic() -> None:
        answers = await chat(app, "/ws/chat/lobby/", ["hi", "there"])
        assert [a["text"] for a in answers] == ["HI", "THERE"]
        communicator = WebsocketCommunicator(app, "/ws/scores/")
        assert (await communicator.connect())[0]
        for score in ("0.5", "0.75"):
            await communicator.send_to(text_data=score)
            assert [await communicator.receive_from() for _ in range(2)] == ["ok", "again"]
        await communicator.disconnect()
        answers = await chat(app, "/ws/v2/chat/ops/", ["bye"], close=4000)
        assert answers == [{"type": "websocket.close", "code": 4000}]

    run(traffic())
    assert connections(memory) == [
        {"http_route": "/ws/chat/<str:room>/", "room": "lobby", "last_text": "there",
         "client_left": 1001, "messages_received": 2, "messages_sent": 2, "close_code": 1001},
        {"http_route": "/ws/scores/", "score": [0.5, 0.75], "messages_received": 2,
         "messages_sent": 4, "close_code": 1000},
        {"http_route": "/ws/v2/chat/<str:room>/", "room": "ops", "last_text": "bye",
         "client_left": 4000,
         "messages_received": 1, "messages_sent": 0, "close_code": 4000},
    ]  # fmt: skip


def test_a_failing_consumer_records_its_exception_and_1011(memory):
    app = websocket_application(router)

    async def traffic() -> None:
        communicator = WebsocketCommunicator(app, "/ws/fails/")
        assert (await communicator.connect())[0]  # connect() accepts by default
        await communicator.send_to(text_data="x")
        with pytest.raises(RuntimeError, match="consumer crashed"):
            await communicator.receive_output()

    run(traffic())
    assert connections(memory) == [
        {"http_route": "^ws/fails/$", "exception_type": "RuntimeError",
         "messages_received": 1, "messages_sent": 0, "close_code": 1011},
    ]  # fmt: skip


def test_settings_mona_names_the_class_and_can_turn_websockets_off(memory):
    options = {**BASE_MONA, "websocket_context_class": "CHAT", "context_id_header": "x-id"}
    with override_settings(MONA=options):
        app = websocket_application(router)

        async def traffic() -> None:
            communicator = WebsocketCommunicator(app, "/ws/chat/a/", headers=[(b"x-id", b"c-1")])
            assert (await communicator.connect())[0]
            await communicator.disconnect()

        run(traffic())
    assert mona.flush(5)
    assert memory.contexts() == {
        ("CHAT", "c-1"): {
            "room": "a",
            "client_left": 1000,
            "http_route": "/ws/chat/<str:room>/",
            "messages_received": 0,
            "messages_sent": 0,
            "close_code": 1000,
            "duration_ms": memory.contexts()[("CHAT", "c-1")]["duration_ms"],
        }
    }
    with override_settings(MONA={**BASE_MONA, "websockets": False}):
        run(chat(websocket_application(router), "/ws/chat/b/", ["x"]))
    assert mona.flush(5) and len(memory.contexts()) == 1


def test_channels_route_matches_like_the_router():
    assert channels_route(router, "/ws/chat/x/") == "/ws/chat/<str:room>/"
    assert channels_route(router, "/ws/v2/chat/x/") == "/ws/v2/chat/<str:room>/"
    assert channels_route(router, "/ws/elsewhere/") is None
