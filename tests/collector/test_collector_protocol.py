"""Mona's token and export endpoints, over real HTTP, as shared/docs/mona-rest-protocol.md."""

from __future__ import annotations

import base64
import gzip
import json
import uuid

import pytest
import requests

from mona_middleware.collector import Collector


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_endpoint_issues_jwt_with_tenant_id(collector: Collector) -> None:
    body = {"clientId": collector.api_key, "secret": collector.secret}
    response = requests.post(collector.token_url, json=body, timeout=5)

    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"accessToken", "refreshToken", "expiresIn"}
    assert tokens["expiresIn"] > 0
    assert _claims(tokens["accessToken"])["tenantId"] == collector.user_id


@pytest.mark.parametrize(
    "body",
    [{"clientId": "nope", "secret": "nope"}, {"clientId": "x"}, {}],
)
def test_token_endpoint_refuses_wrong_credentials(collector: Collector, body: dict) -> None:
    response = requests.post(collector.token_url, json=body, timeout=5)

    assert response.status_code == 401
    assert response.json()["errors"]


def test_refresh_gives_new_tokens_only_for_a_refresh_token(collector: Collector) -> None:
    body = {"clientId": collector.api_key, "secret": collector.secret}
    tokens = requests.post(collector.token_url, json=body, timeout=5).json()

    refreshed = requests.post(
        collector.refresh_url, json={"refreshToken": tokens["refreshToken"]}, timeout=5
    )
    wrong = requests.post(
        collector.refresh_url, json={"refreshToken": tokens["accessToken"]}, timeout=5
    )

    assert refreshed.status_code == 200
    assert refreshed.json()["accessToken"] != tokens["accessToken"]
    assert wrong.status_code == 401


def test_export_requires_a_valid_bearer_token(collector: Collector, token: str) -> None:
    body = {"userId": "local", "messages": [{"arcClass": "C", "message": {"a": 1}}]}

    missing = requests.post(collector.export_url, json=body, timeout=5)
    forged = requests.post(collector.export_url, json=body, headers=_bearer(token + "x"), timeout=5)
    good = requests.post(collector.export_url, json=body, headers=_bearer(token), timeout=5)

    assert missing.status_code == forged.status_code == 401
    assert "topLevelError" in missing.json()
    assert good.status_code == 200
    assert good.json()["failed"] == 0
    assert collector.store.message_count() == 1


def test_token_of_another_collector_is_refused(collector: Collector) -> None:
    with Collector() as other:
        foreign = other.access_token()
    body = {"userId": "local", "messages": [{"arcClass": "C", "message": {"a": 1}}]}

    response = requests.post(collector.export_url, json=body, headers=_bearer(foreign), timeout=5)

    assert response.status_code == 401


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


def test_partial_failure_reports_each_bad_message_and_stores_the_rest(
    collector: Collector, send
) -> None:
    bad = [
        {"contextId": "x", "message": {"a": 1}},  # no arcClass
        {"arcClass": "", "message": {"a": 1}},
        {"arcClass": 7, "message": {"a": 1}},
        {"arcClass": "C", "message": {}},
        {"arcClass": "C", "message": [1]},
        {"arcClass": "C", "message": {"a": 1}, "action": "DELETE"},
        {"arcClass": "C", "message": {"a": 1}, "exportTimestamp": "yesterday"},
        {"arcClass": "C", "message": {"a": 1}, "exportTimestamp": True},
        {"arcClass": "C", "message": {"a": 1}, "contextId": 12},
        "not an object",
    ]
    good = [
        {"arcClass": "C", "contextId": "ok1", "message": {"a": 1}},
        {"arcClass": "C", "contextId": "ok2", "message": {"a": 2}, "exportTimestamp": 1.7e9},
        {"arcClass": "C", "contextId": "ok3", "message": {"a": 3}, "exportTimestamp": None},
        {"arcClass": "C", "contextId": "ok4", "message": {"a": 4},
         "exportTimestamp": "2025-01-02T03:04:05Z", "action": None},
    ]  # fmt: skip

    response = send(good[:2] + bad + good[2:])

    assert not response.ok
    body = response.json()
    assert body["failed"] == len(bad)
    assert set(body["failure_reasons"]) == {str(i) for i in range(2, 2 + len(bad))}
    assert all(isinstance(reason, str) and reason for reason in body["failure_reasons"].values())
    assert [c["id"] for c in collector.store.contexts("C")] == ["ok4", "ok3", "ok2", "ok1"]
    history = collector.store.context("C", "ok4")["history"]
    assert history[0]["timestamp"] == 1735787045.0


@pytest.mark.parametrize(
    ("body", "error_part"),
    [
        ([1, 2], "object"),
        ({"messages": []}, "userId"),
        ({"userId": "local", "messages": {"a": 1}}, "messages"),
        ({"userId": "local", "messages": [], "defaultAction": "REPLACE"}, "defaultAction"),
        ({"userId": "local", "messages": [], "sampleConfigName": 3}, "sampleConfigName"),
    ],
)
def test_unreadable_batch_gets_top_level_error(
    collector: Collector, token: str, body: object, error_part: str
) -> None:
    response = requests.post(collector.export_url, json=body, headers=_bearer(token), timeout=5)

    assert response.status_code == 400
    assert error_part in response.json()["topLevelError"]


def test_gzip_body_is_accepted(collector: Collector, token: str) -> None:
    body = {
        "userId": "local",
        "messages": [{"arcClass": "C", "contextId": "z", "message": {"a": 1}}],
    }
    headers = {**_bearer(token), "Content-Encoding": "gzip", "Content-Type": "application/json"}

    response = requests.post(
        collector.export_url,
        data=gzip.compress(json.dumps(body).encode()),
        headers=headers,
        timeout=5,
    )

    assert response.status_code == 200
    assert collector.store.context("C", "z")["fields"] == {"a": 1}


def test_message_without_context_id_gets_a_uuid(collector: Collector, send) -> None:
    response = send([{"arcClass": "C", "message": {"a": 1}}])

    assert response.status_code == 200
    [context] = collector.store.contexts("C")
    assert uuid.UUID(context["id"])


def test_sdk_extra_keys_are_accepted(collector: Collector, send) -> None:
    # mona_sdk sends every dataclass field, many of them null.
    message = {"arcClass": "C", "contextId": "s", "message": {"a": 1}, "action": None,
               "sampleConfigName": None, "exportTimestamp": None}  # fmt: skip

    assert send([message], sampleConfigName=None).status_code == 200


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
        by_header = requests.get(guarded.url + path, headers=_bearer(token), timeout=5)
        by_query = requests.get(guarded.url + path, params={"token": token}, timeout=5)

        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert by_header.status_code == by_query.status_code == 200

    def test_wildcard_host_requires_auth(self) -> None:
        with Collector(host="0.0.0.0") as wide:
            assert wide.require_auth
            assert wide.url.startswith("http://127.0.0.1:")
            assert requests.get(wide.url + "/api/health", timeout=5).status_code == 401
