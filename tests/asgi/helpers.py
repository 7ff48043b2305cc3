"""Drive ASGI apps by hand where a test client would hide what is being checked.

A test client buffers the response and runs lifespan for us; these helpers let a test
look at each message as the app sends it and at the exporter between lifespan steps.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from packaging.version import Version  # pytest's own dependency

import mona_middleware as mona

pytest.importorskip("starlette")

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 and says so on import
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: F401  (re-exported for the tests)

Message = dict[str, Any]


def older_than(distribution: str, version: str) -> bool:
    """Whether the installed ``distribution`` predates ``version``: for what changed."""
    return Version(importlib.metadata.version(distribution)) < Version(version)


def http_scope(path: str, method: str = "GET", headers: list | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


async def call(
    app: Any, path: str, on_send: Callable[[Message], None] | None = None, **kwargs: Any
) -> list[Message]:
    """One request straight into ``app``; returns what it sent (``on_send`` sees each)."""
    sent: list[Message] = []
    done = asyncio.Event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.wait_for(done.wait(), 10)  # a client that stays until the end
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if on_send is not None:
            on_send(message)
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await asyncio.wait_for(app(http_scope(path, **kwargs), receive, send), 10)
    return sent


class LifespanDriver:
    """Plays the server's side of the lifespan protocol, noting what the exporter had sent
    by the time each answer came back."""

    def __init__(self, app: Any, transport: Any) -> None:
        self.app = app
        self.transport = transport
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.answers: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    async def send(self, message: Message) -> None:
        await self.answers.put((message["type"], len(self.transport.messages)))

    async def startup(self) -> tuple[str, int]:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self.task = asyncio.ensure_future(self.app(scope, self.inbox.get, self.send))
        await self.inbox.put({"type": "lifespan.startup"})
        return await asyncio.wait_for(self.answers.get(), 10)

    async def shutdown(self) -> tuple[str, int]:
        await self.inbox.put({"type": "lifespan.shutdown"})
        answer = await asyncio.wait_for(self.answers.get(), 10)
        await asyncio.wait_for(self.task, 10)
        return answer


def only(transport: Any, **match: Any) -> dict[str, Any]:
    """The fields of the one context whose fields include ``match``."""
    assert mona.flush(5)
    found = [
        fields
        for fields in transport.contexts().values()
        if all(fields.get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, transport.contexts()
    return found[0]
