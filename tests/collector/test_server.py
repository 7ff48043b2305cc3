"""The collector's routes: Mona's no-auth export, JSON errors for wrong paths and methods,
and what a non-loopback collector guards."""

from __future__ import annotations

import pytest
import requests

from mona_middleware.collector import Collector
from mona_middleware.collector.main import ROUTES_HELP
from mona_middleware.collector.server import ROUTES

from ..helpers import bearer


def test_mona_export_needs_no_token_but_the_right_user_id(collector: Collector) -> None:
    message = {"arcClass": "C", "contextId": "1", "message": {"a": 1}}

    ok = requests.post(
        collector.noauth_url, json={"userId": "local", "messages": [message]}, timeout=5
    )
    wrong_user = requests.post(
        collector.noauth_url, json={"userId": "someone", "messages": [message]}, timeout=5
    )

    assert ok.status_code == 200
    assert wrong_user.status_code == 403
    assert "topLevelError" in wrong_user.json()
    assert collector.store.context("C", "1")["fields"] == {"a": 1}
    assert collector.store.message_count() == 1


class TestNonLoopbackMode:
    """``require_auth`` is what a non-loopback host turns on."""

    @pytest.fixture
    def guarded(self) -> Collector:
        with Collector(require_auth=True) as running:
            yield running

    def test_mona_export_is_refused(self, guarded: Collector) -> None:
        body = {"userId": "local", "messages": [{"arcClass": "C", "message": {"a": 1}}]}

        response = requests.post(guarded.noauth_url, json=body, timeout=5)

        assert response.status_code == 401
        assert guarded.store.message_count() == 0

    def test_allow_no_auth_reopens_mona_export(self) -> None:
        body = {"userId": "local", "messages": [{"arcClass": "C", "message": {"a": 1}}]}
        with Collector(require_auth=True, allow_no_auth=True) as open_collector:
            response = requests.post(open_collector.noauth_url, json=body, timeout=5)

        assert response.status_code == 200

    @pytest.mark.parametrize("path", ["/", "/api/health", "/api/classes", "/api/contexts"])
    def test_read_api_and_page_need_a_token(self, guarded: Collector, path: str) -> None:
        token = guarded.access_token()

        refused = requests.get(guarded.url + path, timeout=5)
        by_header = requests.get(guarded.url + path, headers=bearer(token), timeout=5)
        by_query = requests.get(guarded.url + path, params={"token": token}, timeout=5)

        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert by_header.status_code == by_query.status_code == 200

    def test_wildcard_host_requires_auth(self) -> None:
        with Collector(host="0.0.0.0") as wide:
            assert wide.require_auth
            assert wide.url.startswith("http://127.0.0.1:")
            assert requests.get(wide.url + "/api/health", timeout=5).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("POST", "/api/unknown", 404),
        ("GET", "/export", 405),
        ("DELETE", "/api/classes", 405),
        ("PUT", "/monaExport", 405),
        ("GET", "/api/contexts/C/missing", 404),
        ("GET", "/api/contexts/C", 404),
        ("GET", "/api/contexts?limit=abc", 400),
        ("GET", "/api/contexts?limit=0", 400),
        ("GET", "/api/summary", 400),
        ("GET", "/static/../store.py", 404),
        ("GET", "/static/nothing.js", 404),
    ],
)
def test_wrong_paths_methods_and_params_are_json_errors(
    seeded: Collector, method: str, path: str, status: int
) -> None:
    response = requests.request(method, seeded.url + path, data=b"{}", timeout=5)

    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()
    if status == 405:
        assert response.headers["Allow"]


@pytest.fixture
def listed(collector: Collector, send) -> Collector:
    send([{"arcClass": f"K{n}", "contextId": str(n), "message": {"n": n}} for n in range(5)])
    send([{"arcClass": "K0", "contextId": f"c{n}", "message": {"n": n}} for n in range(7)])
    return collector


def _get(collector: Collector, path: str, **params) -> requests.Response:
    return requests.get(collector.url + path, params=params, timeout=5)


def test_lists_answer_totals_truncation_and_pages(listed: Collector) -> None:
    first = _get(listed, "/api/contexts", **{"class": "K0", "limit": 3}).json()
    last = _get(listed, "/api/contexts", **{"class": "K0", "limit": 3, "offset": 6}).json()
    classes = _get(listed, "/api/classes", limit=2).json()
    users = _get(listed, "/api/users").json()

    assert (first["total"], first["truncated"], len(first["contexts"])) == (8, True, 3)
    assert [row["id"] for row in first["contexts"]] == ["c6", "c5", "c4"]  # newest first
    assert (last["offset"], last["truncated"], [r["id"] for r in last["contexts"]]) == (
        6, False, ["c0", "0"]
    )  # fmt: skip
    assert list(classes["classes"]) == ["K0", "K4"] and classes["total"] == 5
    assert classes["truncated"] is True
    assert users == {"users": [users["users"][0]], "total": 1, "truncated": False,
                     "latest": "local", "own": "local"}  # fmt: skip
    assert users["users"][0]["contexts"] == 12


def test_a_contexts_history_is_paged(collector: Collector, send) -> None:
    send([{"arcClass": "H", "contextId": "1", "message": {"n": n}, "action": "ADD"}
          for n in range(30)])  # fmt: skip

    page = _get(collector, "/api/contexts/H/1", history_limit=10, history_offset=20).json()

    assert page["history_total"] == 30 and page["history_offset"] == 20
    assert [entry["fields"]["n"] for entry in page["history"]] == list(range(20, 30))


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/contexts", {"offset": "-1"}),
        ("/api/contexts", {"limit": "1001"}),
        ("/api/classes", {"limit": "x"}),
        ("/api/users", {"limit": "0"}),
        ("/api/contexts/C/keep", {"history_limit": "99999999999999"}),
        ("/api/overview", {}),
        ("/api/overview", {"class": "C" * 1001}),
        ("/api/overview", {"class": "C", "split": "s" * 1001}),
    ],
)
def test_bad_parameters_are_400(seeded: Collector, path: str, params: dict) -> None:
    response = _get(seeded, path, **params)

    assert response.status_code == 400 and response.json()["error"]


def test_an_unknown_user_id_is_404_everywhere(seeded: Collector) -> None:
    for path in ("/api/health", "/api/classes", "/api/contexts", "/api/contexts/C/keep"):
        assert _get(seeded, path, user="nobody").status_code == 404, path
    assert _get(seeded, "/api/overview", **{"class": "C", "user": "nobody"}).status_code == 404


def test_the_overview_of_a_class(collector: Collector, send) -> None:
    send([
        {"arcClass": "O", "contextId": str(n), "exportTimestamp": 1_700_000_000 + n,
         "message": {"ms": n * 10, "code": 200 if n % 4 else 500, "ab": "ab"[n % 2]}}
        for n in range(8)
    ])  # fmt: skip

    overview = _get(collector, "/api/overview", **{"class": "O", "split": "ab"}).json()

    assert overview["contexts"] == 8 and sum(overview["timeline"]["counts"]) == 8
    assert overview["timeline"]["step"] == 0.2  # 7 s in at most 60 bars of a round width
    fields = {field["name"]: field for field in overview["fields"]}
    assert fields["code"]["kind"] == "category" and "numbers" not in fields["code"]
    assert fields["code"]["top"] == [{"value": 200, "count": 6}, {"value": 500, "count": 2}]
    ms = fields["ms"]["numbers"]
    assert (ms["min"], ms["max"], ms["mean"]) == (0, 70, 35)
    assert sum(ms["histogram"]["counts"]) == 8 and len(ms["histogram"]["edges"]) == 21
    assert sum(point["count"] for point in ms["over_time"]) == 8
    segments = {segment["value"]: segment for segment in ms["segments"]}
    assert segments["a"]["count"] == segments["b"]["count"] == 4
    assert segments["a"]["mean"] == 30 and segments["b"]["mean"] == 40  # 0,20,40,60 / 10,...
    assert overview["split"]["values"] == [
        {"value": "a", "contexts": 4}, {"value": "b", "contexts": 4}
    ]  # fmt: skip
    assert overview["splittable"] == ["ab", "code"]


def test_the_help_lists_every_route() -> None:
    for path in [*ROUTES, "/api/contexts/<class>/<id>"]:
        assert f" {path} " in ROUTES_HELP, path
