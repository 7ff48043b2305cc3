"""``Collector`` reopened on the same database file keeps data, credentials and tokens."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import requests

from mona_middleware.collector import Collector, Store


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


# The tables of a collector from before user ids were a column: its own file, and one file
# per other user id next to it (``<db>.<user id>.sqlite3``).
V1_SCHEMA = """
CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL,
    arrived REAL NOT NULL, class TEXT NOT NULL, context_id TEXT NOT NULL, action TEXT NOT NULL,
    timestamp REAL, fields TEXT NOT NULL);
CREATE INDEX messages_by_context ON messages (class, context_id, seq);
CREATE TABLE contexts (class TEXT NOT NULL, context_id TEXT NOT NULL, fields TEXT NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, last_seq INTEGER NOT NULL,
    message_count INTEGER NOT NULL, PRIMARY KEY (class, context_id));
CREATE INDEX contexts_by_recency ON contexts (class, last_seq);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _v1_file(path: Path, contexts: dict[str, int], credentials: bool = False) -> None:
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    for seq, (context_id, value) in enumerate(contexts.items(), start=1):
        fields = json.dumps({"n": value})
        db.execute(
            "INSERT INTO messages VALUES (?, 'b', 100.0, 'OLD', ?, 'OVERWRITE', ?, ?)",
            (seq, context_id, 1_600_000_000 + seq, fields),
        )
        db.execute(
            "INSERT INTO contexts VALUES ('OLD', ?, ?, 100.0, 100.0, ?, 1)",
            (context_id, fields, seq),
        )
    if credentials:
        pair = json.dumps({"api_key": "dev-old", "secret": "old-secret"})
        db.execute("INSERT INTO meta VALUES ('dev_credentials', ?)", (pair,))
    db.commit()
    db.close()


def test_files_of_an_earlier_version_are_converted_and_nothing_is_lost(tmp_path: Path) -> None:
    _v1_file(tmp_path / "c.sqlite3", {"own-1": 1, "own-2": 2}, credentials=True)
    _v1_file(tmp_path / "c.acme.sqlite3", {"acme-1": 10})
    Store(str(tmp_path / "c.backup.sqlite3")).close()  # a copy of today's: not imported
    (tmp_path / "c.empty.sqlite3").touch()  # left by a full descriptor table

    with Collector(db=str(tmp_path / "c.sqlite3")) as collector:
        assert collector.api_key == "dev-old"  # credentials kept
        store = collector.store
        assert store.context("OLD", "own-2", user="local")["fields"] == {"n": 2}
        assert store.context("OLD", "acme-1", user="acme")["fields"] == {"n": 10}
        assert store.context("OLD", "acme-1")["history"][0]["timestamp"] == 1_600_000_001
        assert store.message_count() == 3 and collector.user_ids() == ["acme", "local"]
        assert store.classes(user="acme") == {
            "OLD": {"contexts": 1, "messages": 1, "last_seen": 100.0}
        }  # fmt: skip
        response = _export(collector, collector.access_token(), [
            {"arcClass": "OLD", "contextId": "own-1", "message": {"n": 5}, "action": "ADD"},
        ])  # fmt: skip
        assert response.status_code == 200
        assert store.context("OLD", "own-1", user="local")["fields"] == {"n": [1, 5]}
        overview = store.overview("OLD", user="local")
        assert overview["timeline"]["start"] <= 1_600_000_001  # the messages' own times
    assert not (tmp_path / "c.acme.sqlite3").exists()
    assert (tmp_path / "c.acme.sqlite3.imported").is_file()
    assert (tmp_path / "c.backup.sqlite3").is_file() and (tmp_path / "c.empty.sqlite3").is_file()
    with Collector(db=str(tmp_path / "c.sqlite3")) as reopened:  # imported once, not twice
        assert reopened.store.message_count() == 4
