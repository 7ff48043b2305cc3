"""The collector's routes: Mona's no-auth export, JSON errors for wrong paths and methods,
and what a non-loopback collector guards."""

from __future__ import annotations

import pytest
import requests

from mona_middleware.collector import Collector

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
