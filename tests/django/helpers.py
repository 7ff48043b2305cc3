"""Shared by the Django tests: what the exporter sent, and one GET into an ASGI app."""

from __future__ import annotations

import asyncio

import mona_middleware as mona


def contexts(memory) -> list[dict]:
    assert mona.flush(5)
    return list(memory.contexts().values())


async def get(application, path: str) -> list[dict]:
    """One GET into an ASGI app by a client that stays connected until the app is done."""
    from ..asgi.helpers import http_scope

    sent: list[dict] = []
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never set: Django cancels this once it has answered
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(application(http_scope(path), receive, send), 10)
    return sent


def only(memory, **match) -> dict:
    found = [f for f in contexts(memory) if all(f.get(k) == v for k, v in match.items())]
    assert len(found) == 1, memory.contexts()
    return found[0]
