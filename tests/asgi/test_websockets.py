"""Websocket connections: one context each, with their message counts and close code.

Through Starlette's TestClient, and a real uvicorn with a real websocket client (the
``websockets`` package) sending to the real local Mona server.
"""

from __future__ import annotations

import signal
import threading

import pytest

pytest.importorskip("starlette")

from starlette.websockets import WebSocketDisconnect

import mona_middleware as mona
from mona_middleware._runtime.signals import EXIT_CODE_SIGTERM

from ..servers import mona_env, uvicorn
from .helpers import TestClient
from .websocket_app import make_app

# uvicorn >= 0.29 dies by the re-raised SIGTERM after its shutdown (see test_servers.py)
STOPPED = (0, -signal.SIGTERM, EXIT_CODE_SIGTERM)


def connections(transport) -> dict:
    """``{context id: fields}`` of the WEBSOCKET contexts, ``duration_ms`` checked and dropped."""
    assert mona.flush(5)
    found = {}
    for (cls, context_id), fields in transport.contexts().items():
        assert cls == "WEBSOCKET", (cls, fields)
        assert fields.pop("duration_ms") > 0
        found[context_id] = fields
    return found


def test_a_connection_is_one_context_with_what_its_endpoint_exported(memory):
    client = TestClient(make_app(handle_sigterm=False))
    with client.websocket_connect("/ws/chat/lobby") as websocket:
        websocket.send_text("hi")
        assert [websocket.receive_text(), websocket.receive_text()] == ["HI", "2 chars"]
        websocket.send_text("there")
        assert [websocket.receive_text(), websocket.receive_text()] == ["THERE", "5 chars"]
        websocket.close(code=1001)
    ((fields),) = connections(memory).values()
    assert fields == {
        "room": "lobby",
        "last_text": "there",
        "client_left": True,
        "http_route": "/ws/chat/{room}",
        "messages_received": 2,
        "messages_sent": 4,
        "close_code": 1001,
    }


def test_the_server_closing_failing_and_refusing_connections(memory):
    client = TestClient(make_app(handle_sigterm=False))
    with client.websocket_connect("/tenants/acme/ws/ops") as websocket:
        websocket.send_text("bye")
        with pytest.raises(WebSocketDisconnect) as closed:
            websocket.receive_text()
        assert closed.value.code == 4000
    with pytest.raises(RuntimeError, match="mid-connection"):  # noqa: SIM117
        with client.websocket_connect("/ws/fails") as websocket:
            websocket.send_text("x")
            websocket.receive_text()
    with pytest.raises(WebSocketDisconnect):  # noqa: SIM117
        with client.websocket_connect("/ws/rejected"):
            pass
    found = sorted(connections(memory).values(), key=lambda f: f["http_route"])
    assert found == [
        {"http_route": "/tenants/{tenant}/ws/{room}", "room": "ops", "last_text": "bye",
         "messages_received": 1, "messages_sent": 0, "close_code": 4000},
        {"http_route": "/ws/fails", "exception_type": "RuntimeError",
         "messages_received": 1, "messages_sent": 0, "close_code": 1011},
        {"http_route": "/ws/rejected", "messages_received": 0, "messages_sent": 0,
         "close_code": 1008},
    ]  # fmt: skip


def test_class_field_names_context_id_and_hook(memory):
    seen = []
    app = make_app(
        handle_sigterm=False,
        websocket_context_class="CHAT_CONNECTION",
        field_names={"route": "endpoint", "duration_ms": None},
        context_id_header="X-Request-ID",
        request_hook=lambda ctx, scope: seen.append((scope["type"], ctx.context_class)),
    )
    client = TestClient(app)
    with client.websocket_connect("/ws/chat/a", headers={"X-Request-ID": "ws-1"}) as ws:
        ws.send_text("bye")
        with pytest.raises(WebSocketDisconnect):
            ws.receive_text()
    assert client.get("/").text == "ok"
    assert seen == [("websocket", "CHAT_CONNECTION"), ("http", "CHAT_HTTP")]
    assert mona.flush(5)
    contexts = memory.contexts()
    assert contexts.pop(("CHAT_CONNECTION", "ws-1")) == {
        "room": "a",
        "last_text": "bye",
        "endpoint": "/ws/chat/{room}",
        "messages_received": 1,
        "messages_sent": 0,
        "close_code": 4000,
    }
    ((key, fields),) = contexts.items()
    assert key[0] == "CHAT_HTTP" and fields == {
        "http_method": "GET",
        "endpoint": "/",
        "http_status_code": 200,
    }


def test_excluded_and_off_connections_see_no_context(memory):
    for options in ({"excluded_urls": ["^/ws/"]}, {"websockets": False}):
        client = TestClient(make_app(handle_sigterm=False, **options))
        with client.websocket_connect("/ws/chat/quiet") as websocket:
            websocket.send_text("bye")
            with pytest.raises(WebSocketDisconnect):
                websocket.receive_text()
    assert mona.flush(5) and memory.messages == []


def test_uvicorn_and_a_real_websocket_client(mona_server):
    """Concurrent connections on a real server: each its own context, all sent at SIGTERM."""
    client = pytest.importorskip("websockets.sync.client")
    server = uvicorn("tests.asgi.websocket_app:app", mona_env(mona_server))
    errors = []

    def talk(room: str, texts: int) -> None:
        try:
            url = server.url.replace("http", "ws") + f"/ws/chat/{room}"
            with client.connect(url, open_timeout=10, close_timeout=10) as websocket:
                for n in range(texts):
                    websocket.send(f"m{n}")
                    assert websocket.recv(timeout=10) == f"M{n}"
                    assert websocket.recv(timeout=10) == "2 chars"
        except Exception as exc:  # reported by the test's thread
            errors.append(exc)

    with server:
        server.wait_ready("/")
        threads = [threading.Thread(target=talk, args=(f"r{n}", n + 1)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        assert mona_server.messages() == []  # held until the lifespan flush
        assert server.stop() in STOPPED, server.output
    assert "mona_middleware: could not" not in server.output, server.output
    found = sorted(
        (fields for (cls, _), fields in mona_server.contexts().items() if cls == "WEBSOCKET"),
        key=lambda f: f["room"],
    )
    for fields in found:
        assert fields.pop("duration_ms") > 0
    assert found == [
        {"room": f"r{n}", "last_text": f"m{n}", "client_left": True,
         "http_route": "/ws/chat/{room}", "messages_received": n + 1,
         "messages_sent": 2 * (n + 1), "close_code": 1000}
        for n in range(4)
    ]  # fmt: skip
