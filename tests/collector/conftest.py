"""Fixtures for the collector tests: a real collector on a free loopback port, a token for
it, ``send`` to post a batch, ``seeded``, a collector that must survive the test, and
``start_collector``, a collector process as a user runs it (``running.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from mona_middleware.collector import Collector

from .running import start_collector  # noqa: F401  (a fixture, for every module here)

Send = Callable[..., requests.Response]
SEED = [{"arcClass": "C", "contextId": "keep", "message": {"a": 1}}]


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A strict one: it takes only its own credentials (as off loopback)."""
    with Collector(strict=True) as running:
        yield running


@pytest.fixture
def token(collector: Collector) -> str:
    response = requests.post(
        collector.token_url,
        json={"clientId": collector.api_key, "secret": collector.secret},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()["accessToken"]


@pytest.fixture
def send(collector: Collector, token: str) -> Send:
    """``send(messages, **batch_fields)`` posts one authenticated batch to /export."""

    def post(messages: list[Any], **batch: Any) -> requests.Response:
        body = {"userId": collector.user_id, "messages": messages, **batch}
        headers = {"Authorization": f"Bearer {token}"}
        return requests.post(collector.export_url, json=body, headers=headers, timeout=5)

    return post


@pytest.fixture
def seeded(collector: Collector, send) -> Iterator[Collector]:
    """A collector holding one context; afterwards it must still answer and hold it."""
    assert send(SEED).status_code == 200
    yield collector
    health = requests.get(collector.url + "/api/health", timeout=5)
    assert health.json()["status"] == "ok"
    assert collector.store.context("C", "keep")["fields"] == {"a": 1}
