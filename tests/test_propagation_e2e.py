"""One Mona context across real services on 127.0.0.1 (``tests/propagation_services.py``).

A Flask gateway (gunicorn) calls a FastAPI service (uvicorn) and a Django service
(gunicorn) with ``requests``, ``httpx`` and ``httpx.AsyncClient`` inside one request, and
the FastAPI service once more through a Flask service that runs only OpenTelemetry's
instrumentation. Every server is stopped with SIGTERM before the local Mona server's
records are read, so what it holds is everything the services sent.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import requests

pytest.importorskip("flask")
pytest.importorskip("fastapi")
pytest.importorskip("django")
pytest.importorskip("httpx")
pytest.importorskip("opentelemetry.instrumentation.flask")
pytest.importorskip("opentelemetry.instrumentation.requests")

from mona_middleware._api.sampling import keep

from .servers import AppServer, gunicorn, mona_env, uvicorn

MODULE = "tests.propagation_services"
TAGS = ("requests", "httpx", "async")


def _ready(server: AppServer, timeout: float = 60) -> None:
    """Wait until the server answers (a loaded machine may take seconds to start one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.process.communicate()[0]}")
        try:
            requests.get(server.url + "/health", timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    server.kill()
    raise TimeoutError(f"{server.url} not ready within {timeout} s:\n{server.output}")


class Services:
    """The four services, started callees first; ``stop()`` flushes them all."""

    def __init__(self, mona_server, *, accept: bool, sampling: str | None = None) -> None:
        common = {
            "MONA_MIDDLEWARE_ACCEPT_INCOMING_CONTEXT": str(accept).lower(),
            "MONA_MIDDLEWARE_EXCLUDED_URLS": "^/health$",  # the readiness probe
        }
        if sampling is not None:
            common["MONA_SDK_DEFAULT_SAMPLING_FACTOR"] = sampling
        self.servers: list[AppServer] = []
        gunicorn_args = ("--timeout", "60", "--graceful-timeout", "20")
        self.scoring = self._start(
            uvicorn(
                f"{MODULE}:scoring",
                mona_env(
                    mona_server,
                    MONA_MIDDLEWARE_CONTEXT_CLASS="SCORING",
                    MONA_MIDDLEWARE_SERVICE_NAME="scoring",
                    **common,
                ),
            )
        )
        self.features = self._start(
            gunicorn(
                f"{MODULE}:features",
                mona_env(mona_server, MONA_MIDDLEWARE_CONTEXT_CLASS="FEATURES", **common),
                *gunicorn_args,
                workers=1,
            )
        )
        self.relay = self._start(
            gunicorn(
                f"{MODULE}:relay",
                mona_env(mona_server, SCORING_URL=self.scoring.url),
                *gunicorn_args,
                workers=1,
            )
        )
        self.caller = self._start(
            gunicorn(
                f"{MODULE}:caller",
                mona_env(
                    mona_server,
                    MONA_MIDDLEWARE_CONTEXT_CLASS="GATEWAY",
                    SCORING_URL=self.scoring.url,
                    FEATURES_URL=self.features.url,
                    RELAY_URL=self.relay.url,
                    **common,
                ),
                *gunicorn_args,
                workers=1,
            )
        )

    def _start(self, server: AppServer) -> AppServer:
        self.servers.append(server)
        try:
            _ready(server)
        except BaseException:
            self.kill()
            raise
        return server

    def stop(self) -> None:
        """SIGTERM, the caller first: each flushes what it holds as it exits."""
        codes = {server.url: server.stop() for server in reversed(self.servers)}
        # uvicorn re-raises SIGTERM once it has shut down (and flushed): -15 is its clean exit
        clean = {0, -signal.SIGTERM}
        assert set(codes.values()) <= clean, (codes, [s.output for s in self.servers])

    def kill(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture
def services(mona_server, request) -> Iterator[Services]:
    started = Services(mona_server, **request.param)
    try:
        yield started
    finally:
        started.kill()


def _fanout(services: Services, n: int = 2) -> list[str]:
    ids = []
    with requests.Session() as session:
        for _ in range(n):
            response = session.get(f"{services.caller.url}/fanout", timeout=60)
            if response.status_code != 200:
                services.kill()
                pytest.fail("\n".join(server.output for server in services.servers))
            ids.append(response.json()["context_id"])
    return ids


def _pop_durations(fields: dict, *names: str) -> None:
    for name in names:
        assert fields.pop(name) >= 0, name


@pytest.mark.parametrize("services", [{"accept": True}], indirect=True)
def test_every_callee_adds_its_fields_to_the_callers_one_context(mona_server, services):
    ids = _fanout(services)
    services.stop()
    contexts = mona_server.contexts()
    assert sorted(contexts) == sorted(("GATEWAY", context_id) for context_id in ids), contexts
    for context_id in ids:
        fields = contexts[("GATEWAY", context_id)]
        _pop_durations(fields, "duration_ms", "scoring_duration_ms")
        expected = {
            # the caller's request and its own export
            "caller_items": 3,
            "http_method": "GET",
            "http_route": "/fanout",
            "http_status_code": 200,
            # the FastAPI service's request fields, under its service_name
            "scoring_http_method": "GET",
            "scoring_http_route": "/score",
            "scoring_http_status_code": 200,
            # reached through the service that only runs OpenTelemetry
            "scoring_otel": 1,
            "scoring_otel_user": "alice",
        }
        for tag in TAGS:  # each client's call, with the baggage the caller set itself
            expected.update({f"scoring_{tag}": 1, f"scoring_{tag}_user": "alice"})
            expected.update({f"features_{tag}": 1, f"features_{tag}_user": "alice"})
        assert fields == expected  # Django's request fields: no service_name, left out


@pytest.mark.parametrize("services", [{"accept": False}], indirect=True)
def test_with_accept_incoming_context_off_each_callee_has_its_own_context(mona_server, services):
    (caller_id,) = _fanout(services, 1)
    services.stop()
    contexts = mona_server.contexts()
    caller = contexts.pop(("GATEWAY", caller_id))
    _pop_durations(caller, "duration_ms")
    assert caller == {
        "caller_items": 3,
        "http_method": "GET",
        "http_route": "/fanout",
        "http_status_code": 200,
    }
    by_class: dict[str, list[dict]] = {}
    for (context_class, context_id), fields in contexts.items():
        assert context_id != caller_id
        _pop_durations(fields, "duration_ms")
        by_class.setdefault(context_class, []).append(fields)
    assert sorted(by_class) == ["FEATURES", "SCORING"]
    assert sorted(by_class["SCORING"], key=str) == sorted(
        (
            {
                f"scoring_{tag}": 1,
                f"scoring_{tag}_user": "alice",
                "http_method": "GET",
                "http_route": "/score",
                "http_status_code": 200,
            }
            for tag in (*TAGS, "otel")
        ),
        key=str,
    )
    assert sorted(by_class["FEATURES"], key=str) == sorted(
        (
            {
                f"features_{tag}": 1,
                f"features_{tag}_user": "alice",
                "http_method": "GET",
                "http_route": "/features",
                "http_status_code": 200,
            }
            for tag in TAGS
        ),
        key=str,
    )


@pytest.mark.parametrize("services", [{"accept": True, "sampling": "0.5"}], indirect=True)
def test_sampling_at_half_keeps_or_drops_a_context_in_both_services_together(mona_server, services):
    with requests.Session() as session:
        ids = [
            session.get(f"{services.caller.url}/single", timeout=60).json()["context_id"]
            for _ in range(24)
        ]
    services.stop()
    kept = {context_id for context_id in ids if keep(context_id, 0.5)}
    assert 0 < len(kept) < len(ids)  # both outcomes happened: the test means something
    contexts = mona_server.contexts()
    assert set(contexts) == {("GATEWAY", context_id) for context_id in kept}
    for fields in contexts.values():  # kept: the callee's fields are there too
        assert fields["scoring_requests"] == 1 and fields["http_route"] == "/single"
        assert fields["scoring_http_route"] == "/score"
    messages = mona_server.messages()
    assert len(messages) == 2 * len(kept)  # one from each service per kept context
