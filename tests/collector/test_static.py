"""The collector's page, rendered by a real headless Chromium after its fetches ran.

``--dump-dom`` prints the DOM once the virtual time budget is spent, so what is
asserted here is what the page's JavaScript built from the JSON API: tables, and the
SVG charts it drew (each bar, line and point carries its value in ``data-*``).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from mona_middleware.collector import Collector
from mona_middleware.collector.store import Store
from mona_middleware.collector.validate import Message

from .browser import Node, needs_chromium, png_pixels, render, screenshot

pytestmark = needs_chromium

LATENCIES = [10, 20, 30, 45]


@pytest.fixture
def filled(collector: Collector, send) -> Collector:
    send([{"arcClass": "OTHER_CLASS", "contextId": "o-1", "message": {"v": 1}}])
    send([
        {"arcClass": "REQUESTS", "contextId": f"ctx-{i}",
         "message": {"latency_ms": latency, "model": "alpha" if i % 2 else "beta"}}
        for i, latency in enumerate(LATENCIES)
    ] + [
        {"arcClass": "REQUESTS", "contextId": "ctx-0", "message": {"status": 503}},
    ])  # fmt: skip
    return collector


def card(page: Node, field: str) -> Node:
    return page.find("div", cls="card", data_field=field)


def bar_values(chart: Node) -> dict[str, int]:
    """Label -> count of every bar drawn in a chart."""
    found = chart.find_all("g", cls="bar") or chart.find_all("rect", cls="bar")
    return {bar.get("data-label"): int(bar.get("data-count")) for bar in found}


def test_page_shows_classes_contexts_and_field_charts(filled: Collector, tmp_path: Path) -> None:
    page = render(filled.url + "/", tmp_path)

    classes = {row[0]: row[1:3] for row in page.rows("classes-table")}
    assert classes == {"OTHER_CLASS": ["1", "1"], "REQUESTS": ["4", "5"]}
    assert page.by_id("selected-class").text == "REQUESTS"  # the most recent class
    contexts = page.rows("contexts-table")
    assert [row[0] for row in contexts] == ["ctx-0", "ctx-3", "ctx-2", "ctx-1"]
    chips = [chip.text for chip in page.by_id("contexts-table").find_all("span", cls="chip")[:3]]
    assert chips == ["latency_ms = 10", "model = beta", "status = 503"]  # readable, not JSON
    latency = card(page, "latency_ms")
    assert latency.get("data-kind") == "number"
    stats = {key: float(latency.find("dd", cls=f"stat-{key}").get("data-value"))
             for key in ("mean", "p50", "p95", "min", "max")}  # fmt: skip
    assert stats["mean"] == pytest.approx(statistics.fmean(LATENCIES))
    assert stats["p50"] == pytest.approx(statistics.median(LATENCIES))
    expected_p95 = statistics.quantiles(LATENCIES, n=20, method="inclusive")[18]
    assert stats["p95"] == pytest.approx(expected_p95)
    assert (stats["min"], stats["max"]) == (10, 45)
    assert sum(bar_values(latency.find("svg", cls="histogram")).values()) == 4
    assert bar_values(card(page, "model").find("svg", cls="bars")) == {"alpha": 2, "beta": 2}
    status = card(page, "status")  # a code: a category, never a mean
    assert status.get("data-kind") == "category"
    assert bar_values(status.find("svg", cls="bars")) == {"503": 1}
    assert not status.find_all("dd", cls="stat-mean")
    assert page.by_id("status").text.startswith("6 messages, 5 contexts")
    assert page.by_id("user-name").text == "local" and page.by_id("user-picker").hidden
    assert page.by_id("error").text == ""


def test_page_refreshes_by_itself(filled: Collector, tmp_path: Path) -> None:
    # Virtual time: 9 s pass for the page's timers without the test waiting for them.
    page = render(filled.url + "/", tmp_path, budget_ms=9000)
    refreshes = int(page.by_id("status").get("data-refreshes") or 0)
    assert refreshes >= 4  # at load, then every 2 s
    assert page.by_id("status").text.startswith("6 messages")


def test_selected_context_shows_fields_as_a_table_and_the_raw_json(
    filled: Collector, tmp_path: Path
) -> None:
    page = render(filled.url + "/#class=REQUESTS&context=ctx-0", tmp_path)

    fields = {row[0]: row[1] for row in page.rows("detail-fields")}
    assert fields == {"latency_ms": "10", "model": "beta", "status": "503"}
    raw = page.by_id("raw")
    assert raw.tag == "details" and "open" not in raw.attrs  # one click away
    assert json.loads(page.by_id("raw-json").text) == {
        "latency_ms": 10, "model": "beta", "status": 503
    }  # fmt: skip
    history = page.rows("detail-history")
    assert [row[2] for row in history] == ["OVERWRITE", "OVERWRITE"]
    assert history[1][4] == "status = 503"
    assert page.by_id("history-range").text == "(1\u20132 of 2)"


def test_page_of_a_guarded_collector_uses_the_token_in_its_url(tmp_path: Path) -> None:
    with Collector(require_auth=True) as guarded:
        body = {"userId": "local", "messages": [{"arcClass": "SECURE", "contextId": "s-1",
                                                 "message": {"x": 1}}]}  # fmt: skip
        headers = {"Authorization": f"Bearer {guarded.access_token()}"}
        requests.post(guarded.export_url, json=body, headers=headers, timeout=5).raise_for_status()

        page = render(guarded.ui_url(), tmp_path)

    assert [row[:3] for row in page.rows("classes-table")] == [["SECURE", "1", "1"]]
    assert [row[0] for row in page.rows("contexts-table")] == ["s-1"]


SDK_SCRIPT = textwrap.dedent(
    """
    from mona_sdk import Client, MonaSingleMessage
    client = Client()
    result = client.export_batch([
        MonaSingleMessage(message={"latency": 10 * i, "model": "v%d" % (i % 2)},
                          contextClass="SDK_CLASS", contextId="sdk-%d" % i)
        for i in range(5)
    ])
    assert result["failed"] == 0, result
    """
)


def _send_with_mona_sdk(url: str, user_id: str) -> None:
    pytest.importorskip("mona_sdk")
    env = {
        **os.environ,
        "MONA_SDK_API_KEY": f"{user_id}-own-key",
        "MONA_SDK_SECRET": f"{user_id}-own-secret",
        "MONA_SDK_USER_ID": user_id,
        "MONA_SDK_AUTH_API_TOKEN_URL": url + "/identity/resources/auth/v1/api-token",
        "MONA_SDK_REFRESH_TOKEN_URL": url + "/identity/resources/auth/v1/api-token/token/refresh",
        "MONA_SDK_OVERRIDE_REST_API_URL": url + "/export",
        "MONA_SDK_NUM_OF_RETRIES_FOR_AUTHENTICATION": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", SDK_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_landing_page_shows_a_mona_sdk_users_own_user_id_without_a_click(
    start_collector, tmp_path: Path
) -> None:
    running = start_collector("--db", str(tmp_path / "c.sqlite3"))

    _send_with_mona_sdk(running.url, "acme")

    printed = running.read_until("Accepted user id 'acme'", timeout=10)
    assert f"its data: {running.url}/#user=acme" in printed  # where to look
    page = render(running.url + "/", tmp_path / "profile")
    assert page.by_id("user-name").text == "acme"
    assert page.by_id("no-data").hidden
    assert [row[:3] for row in page.rows("classes-table")] == [["SDK_CLASS", "5", "5"]]
    assert {row[0] for row in page.rows("contexts-table")} == {f"sdk-{i}" for i in range(5)}
    assert bar_values(card(page, "model").find("svg", cls="bars")) == {"v0": 3, "v1": 2}


def test_page_opens_on_the_user_id_that_sent_last_with_a_labelled_picker(
    start_collector, tmp_path: Path
) -> None:
    running = start_collector("--db", ":memory:")
    own = {"arcClass": "OWN", "contextId": "1", "message": {"a": 1}}
    assert running.post("/export", {"userId": "local", "messages": [own]}).ok
    _send_with_mona_sdk(running.url, "acme")

    page = render(running.url + "/", tmp_path / "latest")
    chosen = render(running.url + "/#user=local", tmp_path / "chosen")

    picker = page.by_id("user-picker")
    assert not picker.hidden
    assert picker.find("label").text == "User id" and picker.find("label").get("for") == "user"
    options = [option.get("value") for option in page.by_id("user").find_all("option")]
    assert options == ["acme", "local"]  # the user id that sent last first
    assert [row[0] for row in page.rows("classes-table")] == ["SDK_CLASS"]
    assert [row[0] for row in chosen.rows("classes-table")] == ["OWN"]


CHART_STATUS = [200] * 6 + [404] * 3 + [500]
CHART_LATENCY = [12, 15, 15, 22, 30, 31, 48, 55, 90, 120]
CHART_MODEL = ["v1", "v2"] * 5


@pytest.fixture
def charted(collector: Collector, send) -> Collector:
    send([
        {"arcClass": "CHARTS", "contextId": f"c{i}", "exportTimestamp": 1_700_000_000 + 30 * i,
         "message": {"http_status_code": status, "latency_ms": latency, "model_version": model}}
        for i, (status, latency, model) in enumerate(
            zip(CHART_STATUS, CHART_LATENCY, CHART_MODEL, strict=True))
    ])  # fmt: skip
    return collector


def test_charts_carry_the_classes_values(charted: Collector, tmp_path: Path) -> None:
    page = render(charted.url + "/", tmp_path)
    overview = requests.get(
        charted.url + "/api/overview", params={"class": "CHARTS"}, timeout=10
    ).json()

    status = card(page, "http_status_code")
    assert bar_values(status.find("svg", cls="bars")) == {"200": 6, "404": 3, "500": 1}
    labels = [text.text for text in status.find_all("text", cls="label")]
    assert labels == ["200", "404", "500"]  # drawn, biggest first
    timeline = page.by_id("timeline-chart")
    drawn = [int(bar.get("data-count")) for bar in timeline.find_all("rect", cls="bar")]
    assert drawn == overview["timeline"]["counts"] and sum(drawn) == 10
    assert len(drawn) > 1  # 270 s of contexts: several bars
    latency = card(page, "latency_ms")
    histogram = latency.find("svg", cls="histogram")
    bins = [int(bar.get("data-count")) for bar in histogram.find_all("rect", cls="bar")]
    field = next(f for f in overview["fields"] if f["name"] == "latency_ms")
    assert bins == field["numbers"]["histogram"]["counts"] and sum(bins) == 10
    lows = [float(bar.get("data-low")) for bar in histogram.find_all("rect", cls="bar")]
    assert lows[0] == 12 and all(a < b for a, b in itertools.pairwise(lows))
    points = latency.find("svg", cls="over-time").find_all("circle", cls="point")
    assert sum(int(point.get("data-count")) for point in points) == 10
    means = {int(p.get("data-bucket")): float(p.get("data-mean")) for p in points}
    assert means == {p["bucket"]: pytest.approx(p["mean"]) for p in field["numbers"]["over_time"]}
    model = card(page, "model_version")
    assert bar_values(model.find("svg", cls="bars")) == {"v1": 5, "v2": 5}


def test_split_by_a_field_overlays_the_distribution_of_each_value(
    charted: Collector, tmp_path: Path
) -> None:
    page = render(charted.url + "/#class=CHARTS&split=model_version", tmp_path)

    latency = card(page, "latency_ms")
    lines = latency.find_all("polyline", cls="segment-line")
    counts = {line.get("data-segment"): [int(n) for n in line.get("data-counts").split(",")]
              for line in lines}  # fmt: skip
    assert set(counts) == {"v1", "v2"}
    assert sum(counts["v1"]) == sum(counts["v2"]) == 5
    legend = {item.get("data-value"): int(item.get("data-count"))
              for item in latency.find_all("span", cls="legend-item")}  # fmt: skip
    assert legend == {"v1": 5, "v2": 5}
    table = latency.find("table", cls="segments")
    means = {row.find_all("td")[0].text: float(row.find_all("td")[2].text)
             for row in table.find_all("tr", cls="segment-row")}  # fmt: skip
    v1 = [lat for lat, model in zip(CHART_LATENCY, CHART_MODEL, strict=True) if model == "v1"]
    assert means["v1"] == pytest.approx(statistics.fmean(v1), rel=1e-3)
    options = [option.get("value") for option in page.by_id("split").find_all("option")]
    assert "model_version" in options and "http_status_code" in options


def test_a_screenshot_of_the_charts_shows_the_bars(charted: Collector, tmp_path: Path) -> None:
    shot = screenshot(charted.url + "/", tmp_path / "charts.png", tmp_path / "profile")

    width, height, pixel = png_pixels(shot)
    assert (width, height) == (1200, 900)
    bar_blue = (0x3B, 0x6F, 0xD8)
    painted = sum(pixel(x, y) == bar_blue for y in range(0, height, 3) for x in range(0, width, 3))
    assert painted > 500  # bars drawn, in the bar colour, not an empty or error page
    assert pixel(5, 5) == (0x1D, 0x24, 0x30)  # the header


def test_huge_finite_floats_are_drawn_not_a_blank_page(
    collector: Collector, send, tmp_path
) -> None:
    send([
        {"arcClass": "HUGE", "contextId": str(i), "message": {"x": value}}
        for i, value in enumerate([1.7e308, 1.7e308, -1.7e308, 5.0])
    ])  # fmt: skip

    page = render(collector.url + "/", tmp_path)

    assert page.by_id("error").text == "" and page.by_id("overview-error").hidden
    x = card(page, "x")
    assert float(x.find("dd", cls="stat-max").get("data-value")) == 1.7e308
    assert x.find("dd", cls="stat-max").text == "1.7e+308"
    assert sum(bar_values(x.find("svg", cls="histogram")).values()) == 4


def test_the_page_keeps_working_with_100000_contexts_in_a_class(
    start_collector, tmp_path: Path
) -> None:
    db = str(tmp_path / "big.sqlite3")
    store = Store(db)
    for batch in range(10):
        store.ingest([
            Message(i, "BIG", f"b{batch}-{i}", {
                "latency_ms": (i * 7919) % 1000 / 10, "http_status_code": (200, 404, 500)[i % 3],
                "model_version": f"v{i % 4}"}, "OVERWRITE", 1_700_000_000 + batch * 10_000 + i)
            for i in range(10_000)
        ])  # fmt: skip
    store.close()
    running = start_collector("--db", db)

    page = render(running.url + "/", tmp_path / "profile", budget_ms=8000)

    assert page.by_id("error").text == ""
    assert page.by_id("class-counts").text.startswith("100,000 contexts")
    assert page.by_id("contexts-range").text == "1\u201350 of 100,000"
    assert len(page.rows("contexts-table")) == 50
    timeline = page.by_id("timeline-chart").find_all("rect", cls="bar")
    assert sum(int(bar.get("data-count")) for bar in timeline) == 100_000
    assert bar_values(card(page, "http_status_code").find("svg", cls="bars")) == {
        "200": 33_340, "404": 33_330, "500": 33_330
    }  # fmt: skip
    overview = running.get("/api/overview", **{"class": "BIG"})  # what the page drew, cached
    assert overview.ok and len(overview.content) < 100_000  # aggregated, not rows
    assert overview.json()["contexts"] == 100_000


PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">"


def test_no_markup_sent_by_an_app_runs_on_the_page(start_collector, tmp_path: Path) -> None:
    running = start_collector("--db", ":memory:")
    body = {"userId": PAYLOAD, "messages": [{
        "arcClass": PAYLOAD, "contextId": PAYLOAD,
        "message": {PAYLOAD: PAYLOAD, "kind": PAYLOAD, "n": 1}}]}  # fmt: skip
    assert running.post("/export", body).ok
    assert running.post("/export", {**body, "userId": "other"}).ok

    url = (
        running.url
        + "/#"
        + requests.compat.urlencode(
            {"user": PAYLOAD, "class": PAYLOAD, "context": PAYLOAD, "split": "kind"}
        )
    )
    page = render(url, tmp_path)

    assert page.find("title").text == "Mona collector"
    assert not page.find_all("img") and len(page.find_all("script")) == 1
    assert page.rows("classes-table")[0][0] == PAYLOAD  # shown, as text
    assert page.by_id("selected-context").text == f"{PAYLOAD} / {PAYLOAD}"
    assert {row[0]: row[1] for row in page.rows("detail-fields")}[PAYLOAD] == PAYLOAD
    assert PAYLOAD in [option.text.split(" (")[0] for option in page.find_all("option")]
