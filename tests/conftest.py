"""Shared fixtures: a clean environment per test, an in-memory exporter, a real Mona server."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

import mona_middleware as mona
from mona_middleware._runtime import process
from mona_middleware._util import log as _log
from mona_middleware.transports import InMemoryTransport

from .mona_server import MonaTestServer

_OUR_PREFIXES = ("MONA_", "AUTH_MODE")


@pytest.fixture(autouse=True)
def clean_mona(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """Each test starts with no Mona variables, no exporter, and its own working dir."""
    for name in list(os.environ):
        if name.startswith(_OUR_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the default spool's home
    _log.limited.reset()
    process.detach()
    yield
    mona.shutdown(2)
    process.detach()


@pytest.fixture
def memory() -> InMemoryTransport:
    """The exporter sends to memory, flushing every 50 ms."""
    transport = InMemoryTransport()
    mona.configure(transport=transport, flush_interval=0.05)
    return transport


@pytest.fixture
def mona_server() -> Iterator[MonaTestServer]:
    with MonaTestServer() as server:
        yield server


def rest_options(server: MonaTestServer, **extra) -> dict:
    """Options pointing the REST transport at ``server`` with its key and secret."""
    options = {
        "api_key": server.api_key,
        "secret": server.secret,
        "auth_api_token_url": server.token_url,
        "refresh_token_url": server.refresh_url,
        "rest_api_url": server.export_url,
        "flush_interval": 0.05,
        "http_timeout": 2,
    }
    options.update(extra)
    return options


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything logged at DEBUG, by us and by requests/urllib3."""
    caplog.set_level(logging.DEBUG)
    return caplog


# Modules (or single tests) that start real servers, workers or interpreters, or wait out
# a real outage: marked `processes`, so `pytest -m "not processes"` is a quick run while
# editing (the README's Development section gives both durations). Newer modules mark
# themselves (pytestmark).
PROCESS_MODULES = frozenset(
    {
        "tests/asgi/test_servers.py",
        "tests/celery/test_workers.py",
        "tests/cli/test_demo.py",
        "tests/collector/test_main.py",
        "tests/collector/test_static.py",
        "tests/django/test_servers.py",
        "tests/export/test_delivery.py",
        "tests/flask/test_servers.py",
        "tests/runtime/test_children.py",
        "tests/runtime/test_signals.py",
        "tests/runtime/test_uwsgi_host.py",
        "tests/test_benchmarks_smoke.py",
        "tests/test_optional_frameworks.py",
        "tests/test_propagation_e2e.py",
        # one test of a module: every module imported first, each in its own interpreter
        "tests/test_package.py::test_every_module_imports_first_in_a_fresh_interpreter_in_any_order",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::")[0] in PROCESS_MODULES or item.nodeid in PROCESS_MODULES:
            item.add_marker(pytest.mark.processes)
