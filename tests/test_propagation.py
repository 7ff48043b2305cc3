"""``propagate()``: a requests session and httpx clients send the current context with
each call, to a real HTTP server on 127.0.0.1; nothing else in the library changes."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import mona_middleware as mona
from mona_middleware.propagation import outgoing_headers, propagate

from .helpers import run_child


class _Echo(BaseHTTPRequestHandler):
    """Answers each GET with the baggage headers it received, as a JSON list."""

    def do_GET(self) -> None:
        body = json.dumps(self.headers.get_all("baggage") or []).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


OURS = "mona.context_class=GATEWAY,mona.context_id=req-1"


def test_a_requests_session_sends_the_context_merged_with_the_calls_baggage(memory, echo):
    session = propagate(requests.Session())
    assert session.get(echo, timeout=5).json() == []  # outside a context: untouched
    with mona.context("GATEWAY", context_id="req-1"):
        assert session.get(echo, timeout=5).json() == [OURS]
        sent = session.get(echo, headers={"Baggage": "userId=alice"}, timeout=5).json()
        assert sent == ["userId=alice," + OURS]
    assert propagate(session) is session  # twice: still one set of entries
    with mona.context("GATEWAY", context_id="req-1"):
        assert session.get(echo, timeout=5).json() == [OURS]
    assert requests.get(echo, timeout=5).json() == []  # the library itself is unchanged


def test_an_httpx_client_sends_the_context_merged_with_the_calls_baggage(memory, echo):
    httpx = pytest.importorskip("httpx")
    with propagate(httpx.Client(timeout=5)) as client:
        assert client.get(echo).json() == []
        with mona.context("GATEWAY", context_id="req-1"):
            assert client.get(echo).json() == [OURS]
            assert client.get(echo, headers={"baggage": "a=1"}).json() == ["a=1," + OURS]
        assert propagate(client).event_hooks["request"].__len__() == 1
    with httpx.Client(timeout=5) as other, mona.context("GATEWAY", context_id="req-1"):
        assert other.get(echo).json() == []


def test_an_async_httpx_client_sends_each_tasks_own_context(memory, echo):
    httpx = pytest.importorskip("httpx")

    async def call(client, context_id: str) -> list[str]:
        async with mona.context("GATEWAY", context_id=context_id):
            await asyncio.sleep(0)
            return (await client.get(echo)).json()

    async def main() -> list[list[str]]:
        async with propagate(httpx.AsyncClient(timeout=5)) as client:
            return await asyncio.gather(*(call(client, f"req-{i}") for i in range(5)))

    answers = asyncio.run(main())
    assert answers == [[f"mona.context_class=GATEWAY,mona.context_id=req-{i}"] for i in range(5)]


def test_anything_else_is_refused_with_the_recipe():
    with pytest.raises(TypeError, match="outgoing_headers"):
        propagate(object())


def test_the_recipe_for_other_clients(memory):
    headers = {"baggage": "userId=alice", "Accept": "*/*"}
    with mona.context("GATEWAY", context_id="req-1"):
        merged = {**headers, **outgoing_headers(headers)}
    assert merged == {"baggage": "userId=alice," + OURS, "Accept": "*/*"}


def test_the_module_imports_and_works_without_httpx():
    # requests is the package's own dependency (its REST transport); httpx is optional
    child = run_child(
        """
        import sys
        sys.modules["httpx"] = None  # not installed: importing it raises ImportError
        import requests
        import mona_middleware.propagation as p
        session = requests.Session()
        print(p.propagate(session) is session)
        """
    )
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out.strip() == "True"


def test_opentelemetrys_requests_instrumentation_does_not_replace_the_context(memory, echo):
    """OpenTelemetry injects its own baggage into each call; ours is merged after it."""
    pytest.importorskip("opentelemetry.instrumentation.requests")
    from opentelemetry import baggage, context
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    instrumentor = RequestsInstrumentor()
    instrumentor.instrument()
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        session = propagate(requests.Session())
        with mona.context("GATEWAY", context_id="req-1"):
            (sent,) = session.get(echo, timeout=5).json()
        (theirs,) = requests.get(echo, timeout=5).json()  # OpenTelemetry alone
    finally:
        context.detach(token)
        instrumentor.uninstrument()
    assert theirs == "tenant=acme"
    assert sent == "tenant=acme," + OURS
