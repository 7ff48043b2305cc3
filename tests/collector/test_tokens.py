"""Mona's token endpoints over real HTTP: JWTs with the tenant id, refresh, verification."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from mona_middleware.collector import Collector
from mona_middleware.collector.tokens import ACCESS, REFRESH, TokenIssuer

from ..helpers import bearer


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))




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
    forged = requests.post(collector.export_url, json=body, headers=bearer(token + "x"), timeout=5)
    good = requests.post(collector.export_url, json=body, headers=bearer(token), timeout=5)

    assert missing.status_code == forged.status_code == 401
    assert "topLevelError" in missing.json()
    assert good.status_code == 200
    assert good.json()["failed"] == 0
    assert collector.store.message_count() == 1


def test_token_of_another_collector_is_refused(collector: Collector) -> None:
    with Collector() as other:
        foreign = other.access_token()
    body = {"userId": "local", "messages": [{"arcClass": "C", "message": {"a": 1}}]}

    response = requests.post(collector.export_url, json=body, headers=bearer(foreign), timeout=5)

    assert response.status_code == 401


def test_a_token_verifies_only_for_its_use_its_issuer_and_its_lifetime():
    issuer = TokenIssuer("key", "secret", "tenant")
    access = issuer.issue(ACCESS, 60)
    assert issuer.verify(access, ACCESS) and not issuer.verify(access, REFRESH)
    assert _claims(access)["tenantId"] == "tenant"  # what mona_sdk reads as the user id
    assert TokenIssuer("key", "secret", "tenant").verify(access, ACCESS)  # after a restart
    assert not TokenIssuer("key", "another secret", "tenant").verify(access, ACCESS)
    assert not TokenIssuer("key", "secret", "another tenant").verify(access, ACCESS)
    assert not issuer.verify(issuer.issue(ACCESS, -1), ACCESS)  # expired
    header, payload, signature = access.split(".")
    assert not issuer.verify(f"{header}.{payload}x.{signature}", ACCESS)  # tampered with
    for junk in (None, 42, "", "a.b", "a.b.c", f"{header}.{payload}"):
        assert not issuer.verify(junk, ACCESS)


def test_credentials_match_only_the_issuers_own_pair():
    issuer = TokenIssuer("key", "secret", "tenant")
    assert issuer.credentials_match("key", "secret")
    for client_id, secret in (("key", "wrong"), ("wrong", "secret"), (None, "secret"), ("key", 1)):
        assert not issuer.credentials_match(client_id, secret)
    tokens = issuer.token_response(ttl=90)
    assert tokens["expiresIn"] == 90
    assert issuer.verify(tokens["accessToken"], ACCESS)
    assert issuer.verify(tokens["refreshToken"], REFRESH)
