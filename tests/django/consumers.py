"""Django Channels consumers the websocket tests route to: async and sync ones."""

from __future__ import annotations

import pytest

pytest.importorskip("channels")

from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from channels.routing import URLRouter
from django.urls import path, re_path

import mona_middleware as mona


class Chat(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        mona.export({"room": self.scope["url_route"]["kwargs"]["room"]})
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        mona.export({"last_text": text_data})
        if text_data == "bye":
            await self.close(code=4000)
            return
        await self.send(text_data=text_data.upper())

    async def disconnect(self, code) -> None:
        mona.export({"client_left": code})


class SyncScores(WebsocketConsumer):
    """A sync consumer: Channels runs its handlers in a thread (asgiref's sync_to_async)."""

    def connect(self) -> None:
        self.accept()

    def receive(self, text_data=None, bytes_data=None) -> None:
        mona.export({"score": float(text_data)}, action="ADD")
        self.send(text_data="ok")
        self.send(text_data="again")


class Fails(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None) -> None:
        raise RuntimeError("consumer crashed")


router = URLRouter(
    [
        path("ws/chat/<str:room>/", Chat.as_asgi()),
        path("ws/scores/", SyncScores.as_asgi()),
        re_path(r"^ws/fails/$", Fails.as_asgi()),
        path("ws/v2/", URLRouter([path("chat/<str:room>/", Chat.as_asgi())])),
    ]
)
