"""``Collector`` reopened on the same database file keeps data, credentials and tokens."""

from __future__ import annotations

from pathlib import Path

import requests

from mona_middleware.collector import Collector


def _export(collector: Collector, token: str, messages: list[dict]) -> requests.Response:
    body = {"userId": collector.user_id, "messages": messages}
    headers = {"Authorization": f"Bearer {token}"}
    return requests.post(collector.export_url, json=body, headers=headers, timeout=5)


def test_restart_keeps_contexts_and_aggregates_onto_them(tmp_path: Path) -> None:
    db = str(tmp_path / "collector.sqlite3")
    first = Collector(db=db).start()
    try:
        token = first.access_token()
        response = _export(first, token, [
            {"arcClass": "C", "contextId": "1", "message": {"a": 1, "n": 1}},
            {"arcClass": "C", "contextId": "2", "message": {"b": "x"}},
        ])  # fmt: skip
        assert response.status_code == 200
        credentials = (first.api_key, first.secret)
    finally:
        first.stop()

    with Collector(db=db) as second:
        assert (second.api_key, second.secret) == credentials
        assert second.store.message_count() == 2
        assert second.store.context("C", "2")["fields"] == {"b": "x"}
        # A token from before the restart still works: it is signed with the same secret.
        response = _export(second, token, [
            {"arcClass": "C", "contextId": "1", "message": {"n": 2}, "action": "ADD"},
            {"arcClass": "C", "contextId": "1", "message": {"a": 5}},
        ])  # fmt: skip
        assert response.status_code == 200
        detail = second.store.context("C", "1")
        assert detail["fields"] == {"a": 5, "n": [1, 2]}
        assert len(detail["history"]) == 3
        assert second.store.classes()["C"] == {
            "contexts": 2,
            "messages": 4,
            "last_seen": detail["last_seen"],
        }


def test_explicit_credentials_override_stored_ones(tmp_path: Path) -> None:
    db = str(tmp_path / "collector.sqlite3")
    Collector(db=db).stop()

    with Collector(db=db, api_key="k", secret="s", user_id="acme") as collector:
        response = requests.post(
            collector.token_url, json={"clientId": "k", "secret": "s"}, timeout=5
        )
        assert response.status_code == 200
        assert collector.env()["MONA_SDK_USER_ID"] == "acme"
