"""The collector's page, rendered by a real headless Chromium after its fetches ran.

``--dump-dom`` prints the DOM once the virtual time budget is spent, so what is
asserted here is what the page's JavaScript built from the JSON API.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from mona_middleware.collector import Collector

CHROMIUM = next(
    (
        found
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (found := shutil.which(name))
    ),
    None,
)


pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install -y chromium)"
)


class _Tables(HTMLParser):
    """Cell texts of every ``<tbody>`` row, by the id of the enclosing table."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.texts: dict[str, str] = {}
        self.attributes: dict[str, dict[str, str | None]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._id_stack: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element_id = dict(attrs).get("id")
        if element_id:
            self.attributes[element_id] = dict(attrs)
        self._id_stack.append(element_id)
        if tag == "table":
            self._table = element_id
            self.tables.setdefault(element_id or "", [])
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._id_stack:
            self._id_stack.pop()
        if tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for element_id in self._id_stack:
            if element_id:
                self.texts[element_id] = self.texts.get(element_id, "") + data


def render(url: str, profile: Path, budget_ms: int = 5000) -> _Tables:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
        "--dump-dom", url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = _Tables()
    parsed.feed(result.stdout)
    # Body rows only: header rows hold <th>, so they parse as empty rows.
    parsed.tables = {name: [row for row in rows if row] for name, rows in parsed.tables.items()}
    return parsed


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


def test_page_shows_classes_contexts_and_summaries(filled: Collector, tmp_path: Path) -> None:
    page = render(filled.url + "/", tmp_path)

    classes = {row[0]: row[1:3] for row in page.tables["classes-table"]}
    assert classes == {"OTHER_CLASS": ["1", "1"], "REQUESTS": ["4", "5"]}
    assert page.texts["selected-class"] == "REQUESTS"  # the most recent class
    contexts = page.tables["contexts-table"]
    assert [row[0] for row in contexts] == ["ctx-0", "ctx-3", "ctx-2", "ctx-1"]
    assert contexts[0][3] == '{"latency_ms":10,"model":"beta","status":503}'
    summary = {row[0]: row for row in page.tables["summary-table"]}
    mean, p50, p95 = summary["latency_ms"][2:5]
    assert float(mean) == pytest.approx(statistics.fmean(LATENCIES), abs=1e-3)
    assert float(p50) == pytest.approx(statistics.median(LATENCIES), abs=1e-3)
    expected_p95 = statistics.quantiles(LATENCIES, n=20, method="inclusive")[18]
    assert float(p95) == pytest.approx(expected_p95, abs=1e-3)
    assert summary["latency_ms"][1] == "4"
    assert '"alpha" (2)' in summary["model"][7]
    assert page.texts["status"].startswith("6 messages, 5 contexts")
    assert page.texts.get("error", "") == ""


def test_page_refreshes_by_itself(filled: Collector, tmp_path: Path) -> None:
    # Virtual time: 9 s pass for the page's timers without the test waiting for them.
    page = render(filled.url + "/", tmp_path, budget_ms=9000)
    refreshes = int(page.attributes["status"].get("data-refreshes") or 0)
    assert refreshes >= 4  # at load, then every 2 s
    assert page.texts["status"].startswith("6 messages, 5 contexts")


def test_selected_context_shows_fields_and_history(filled: Collector, tmp_path: Path) -> None:
    page = render(filled.url + "/#class=REQUESTS&context=ctx-0", tmp_path)

    fields = {row[0]: row[1] for row in page.tables["detail-fields"]}
    assert fields == {"latency_ms": "10", "model": '"beta"', "status": "503"}
    history = page.tables["detail-history"]
    assert [row[2] for row in history] == ["OVERWRITE", "OVERWRITE"]
    assert history[1][4] == '{"status":503}'


def test_page_of_a_guarded_collector_uses_the_token_in_its_url(tmp_path: Path) -> None:
    with Collector(require_auth=True) as guarded:
        body = {"userId": "local", "messages": [{"arcClass": "SECURE", "contextId": "s-1",
                                                 "message": {"x": 1}}]}  # fmt: skip
        headers = {"Authorization": f"Bearer {guarded.access_token()}"}
        requests.post(guarded.export_url, json=body, headers=headers, timeout=5).raise_for_status()

        page = render(guarded.ui_url(), tmp_path)

    assert page.tables["classes-table"] == [[
        "SECURE", "1", "1", page.tables["classes-table"][0][3]
    ]]  # fmt: skip
    assert [row[0] for row in page.tables["contexts-table"]] == ["s-1"]


def test_page_of_a_loopback_collector_shows_each_user_ids_contexts(tmp_path: Path) -> None:
    with Collector() as local:
        for user, cls in (("local", "OWN"), ("acc", "THEIRS")):
            body = {"userId": user, "messages": [{"arcClass": cls, "contextId": "1",
                                                  "message": {"u": user}}]}  # fmt: skip
            headers = {"Authorization": "Bearer any-token"}
            requests.post(
                local.export_url, json=body, headers=headers, timeout=5
            ).raise_for_status()

        own = render(local.url + "/", tmp_path / "own")
        theirs = render(local.url + "/#user=acc", tmp_path / "theirs")

    assert [row[0] for row in own.tables["classes-table"]] == ["OWN"]
    assert [row[0] for row in theirs.tables["classes-table"]] == ["THEIRS"]
    assert "hidden" not in theirs.attributes["user"]  # the user id picker is shown
