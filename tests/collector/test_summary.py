"""The summary API's numbers, checked against the statistics module on known data."""

from __future__ import annotations

import statistics

import pytest
import requests

from mona_middleware.collector import Collector
from mona_middleware.collector.summary import summarize

LATENCIES = [12.5, 40, 7, 99.25, 15, 15, 61, 3, 28.75, 50, 18, 22]


MODELS = ["v1", "v2", "v1", "v3", "v1", "v2", "v4", "v5", "v6", "v1", "v2", "v3"]


def _expected(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "mean": statistics.fmean(values),
        "p50": statistics.median(values),
        "p95": statistics.quantiles(values, n=20, method="inclusive")[18],
        "min": min(values),
        "max": max(values),
    }


@pytest.fixture
def filled(collector: Collector, send) -> Collector:
    messages = [
        {"arcClass": "REQ", "contextId": f"r{i}",
         "message": {"latency_ms": latency, "model": model, "ok": i % 3 != 0}}
        for i, (latency, model) in enumerate(zip(LATENCIES, MODELS, strict=True))
    ]  # fmt: skip
    assert send(messages).status_code == 200
    return collector


def _summary(collector: Collector, context_class: str) -> dict:
    response = requests.get(
        collector.url + "/api/summary", params={"class": context_class}, timeout=5
    )
    response.raise_for_status()
    return response.json()


def test_number_field_statistics(filled: Collector) -> None:
    summary = _summary(filled, "REQ")

    assert summary["contexts"] == len(LATENCIES)
    latency = summary["fields"]["latency_ms"]
    assert latency["count"] == len(LATENCIES)
    assert latency["numbers"] == pytest.approx(_expected(LATENCIES))


def test_string_field_top_values(filled: Collector) -> None:
    model = _summary(filled, "REQ")["fields"]["model"]

    assert "numbers" not in model
    assert model["top"][:3] == [
        {"value": "v1", "count": 4},
        {"value": "v2", "count": 3},
        {"value": "v3", "count": 2},
    ]
    assert len(model["top"]) == 5
    assert model["distinct"] == 6


def test_add_lists_count_as_numbers(collector: Collector, send) -> None:
    send([
        {"arcClass": "B", "contextId": "1", "message": {"t": 1}, "action": "ADD"},
        {"arcClass": "B", "contextId": "1", "message": {"t": 9}, "action": "ADD"},
        {"arcClass": "B", "contextId": "2", "message": {"t": 5}},
    ])  # fmt: skip

    field = _summary(collector, "B")["fields"]["t"]

    assert field["count"] == 2  # contexts holding the field
    assert field["numbers"] == pytest.approx(_expected([1, 9, 5]))


def test_unknown_class_has_an_empty_summary(collector: Collector) -> None:
    assert _summary(collector, "NOPE") == {
        "class": "NOPE", "contexts": 0, "fields": {}, "fields_total": 0, "truncated": False
    }  # fmt: skip


def test_summarize_mixed_and_odd_values() -> None:
    result = summarize(
        [{"x": 4, "flag": True, "obj": {"a": 1}}, {"x": "4", "flag": False}, {"x": None}]
    )

    x = result["fields"]["x"]
    assert x["count"] == 3
    assert x["numbers"] == {"count": 1, "mean": 4.0, "p50": 4, "p95": 4, "min": 4, "max": 4}
    assert x["top"] == [{"value": "4", "count": 1}]
    assert result["fields"]["flag"]["top"] == [
        {"value": True, "count": 1},
        {"value": False, "count": 1},
    ]
    assert result["fields"]["obj"] == {"count": 1, "kind": "other", "other": 1}
