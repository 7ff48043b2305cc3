"""The public ``mona_sdk`` client talks to the collector, and stores what mona_middleware
stores for the same messages.

The SDK reads its endpoints from the environment at import time and keeps token state
in module globals, so it runs in a subprocess with the collector's ``env()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import mona_middleware as mona
from mona_middleware.collector import Collector

pytest.importorskip("mona_sdk")


SCRIPT = textwrap.dedent(
    """
    import json, os
    from mona_sdk import Client, MonaSingleMessage

    client = Client(os.environ["MONA_SDK_API_KEY"], os.environ["MONA_SDK_SECRET"])
    single = client.export(MonaSingleMessage(
        message={"score": 0.5, "model": "v3"}, contextClass="SDK", contextId="one",
        exportTimestamp=1700000000))
    batch = client.export_batch([
        MonaSingleMessage(message={"latency": 10}, contextClass="SDK", contextId="one",
                          action="ADD"),
        MonaSingleMessage(message={"latency": 20}, contextClass="SDK", contextId="one",
                          action="ADD"),
        MonaSingleMessage(message={"MONA_x": 1}, contextClass="SDK", contextId="two"),
        MonaSingleMessage(message={"x": 1}, contextClass="", contextId="bad"),
    ], default_action="OVERWRITE")
    print(json.dumps({"single": single, "batch": batch}))
    """
)


def _run_sdk(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, **env, "MONA_SDK_NUM_OF_RETRIES_FOR_AUTHENTICATION": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mona_sdk_exports_single_messages_and_batches(collector: Collector) -> None:
    result = _run_sdk(collector.env())

    assert result["single"] is True
    batch = result["batch"]
    assert (batch["total"], batch["sent"], batch["failed"]) == (4, 3, 1)
    assert list(batch["failure_reasons"]) == ["3"]
    one = collector.store.context("SDK", "one")
    assert one["fields"] == {"score": 0.5, "model": "v3", "latency": [10, 20]}
    assert one["history"][0]["timestamp"] == 1700000000
    assert collector.store.context("SDK", "two")["fields"] == {"MY_MONA_x": 1}
    assert collector.store.message_count() == 4


def test_mona_sdk_without_user_id_reads_it_from_the_token(collector: Collector) -> None:
    env = {name: value for name, value in collector.env().items() if name != "MONA_SDK_USER_ID"}
    env["MONA_SDK_USER_ID"] = ""  # os.environ may not carry one, but make sure

    result = _run_sdk(env)

    assert result["single"] is True
    assert collector.store.message_count() == 4


def _m(cls: str, cid: str, fields: dict[str, Any], action: str | None = None, ts: Any = None):
    message = {"message": fields, "contextClass": cls, "contextId": cid, "action": action}
    if ts is not None:
        message["exportTimestamp"] = ts
    return message


# Steps are sent one after the other; inside a step, in one batch.
STEPS: list[list[dict[str, Any]]] = [
    [
        _m("MODEL", "m1", {"score": 0.5, "model": "v3", "tags": ["a"]}, "OVERWRITE", 1700000000),
        _m("MODEL", "m1", {"latency": 12}, "ADD", 1700000001),
        _m("MODEL", "m1", {"latency": 15}, "ADD"),
        _m("MODEL", "m2", {"score": 0.9, "nested": {"k": [1, 2]}}, ts="2024-01-02T03:04:05Z"),
        _m("JOB", "j1", {"rows": 10, "ok": True}, "OVERWRITE", 1700000100.25),
        _m("JOB", "j1", {"rows": 3}, "NEW"),
        _m("MODEL", "m3", {"MONA_reserved": 1, "text": "naïve \u2013 ✓ \u2028 end"}),
    ],
    [
        _m("MODEL", "m1", {"score": 0.75}, "OVERWRITE"),
        _m("MODEL", "m1", {"latency": 20, "tag": "late"}, "ADD", 1700000200),
        _m("JOB", "j1", {"rows": 4}, "ADD"),
        _m("MODEL", "m2", {"reset": "yes"}, "NEW"),
        _m("EVENTS", "e1", {"kind": "click"}, "ADD"),
        _m("EVENTS", "e1", {"kind": "view"}, "ADD"),
        _m("EVENTS", "e1", {"count": 2}),
    ],
]


# What context() + export() does, as the SDK's equivalent messages of one batch each.
CONTEXT_OPS: dict[str, list[tuple[dict[str, Any], str | None]]] = {
    "q1": [
        ({"path": "/a", "status": 200}, None),
        ({"retries": 1}, "ADD"),
        ({"retries": 2}, "ADD"),
        ({"status": 500}, "OVERWRITE"),
    ],
    "q2": [({"a": 1}, None), ({"b": 2}, "NEW"), ({"c": 3}, "ADD"), ({"c": 4}, "ADD")],
}


CONTEXT_TIMESTAMP = 1700000300


SDK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from mona_sdk import Client, MonaSingleMessage

    client = Client(os.environ["MONA_SDK_API_KEY"], os.environ["MONA_SDK_SECRET"])
    results = [
        client.export_batch([MonaSingleMessage(**message) for message in step])
        for step in json.load(sys.stdin)
    ]
    print(json.dumps(results))
    """
)


def _sdk_steps() -> list[list[dict[str, Any]]]:
    steps = [list(step) for step in STEPS]
    for context_id, ops in CONTEXT_OPS.items():
        steps.append(
            [_m("REQ", context_id, fields, action, CONTEXT_TIMESTAMP) for fields, action in ops]
        )
    return steps


def _stored(collector: Collector) -> dict[tuple[str, str], Any]:
    return {(c["class"], c["id"]): c["fields"] for c in collector.store.contexts(limit=1000)}


@pytest.fixture
def pair() -> Iterator[tuple[Collector, Collector]]:
    with Collector() as sdk_side, Collector() as our_side:
        yield sdk_side, our_side


def _send_with_sdk(collector: Collector) -> None:
    steps = _sdk_steps()
    env = {**os.environ, **collector.env(), "MONA_SDK_NUM_OF_RETRIES_FOR_AUTHENTICATION": "0"}
    result = subprocess.run(
        [sys.executable, "-c", SDK_SCRIPT],
        input=json.dumps(steps),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert [answer["failed"] for answer in answers] == [0] * len(steps), answers
    assert collector.wait_for_messages(sum(map(len, steps)), timeout=10)


def _send_with_mona_middleware(collector: Collector) -> None:
    mona.configure(
        api_key=collector.api_key,
        secret=collector.secret,
        user_id=collector.user_id,
        auth_api_token_url=collector.token_url,
        refresh_token_url=collector.refresh_url,
        rest_api_url=collector.export_url,
        flush_interval=0.05,
        http_timeout=5,
        spool=False,
    )
    for step in STEPS:
        assert mona.export_batch(step) == len(step)
        assert mona.flush(10)  # the next step is sent after this one, as the SDK does
    for context_id, ops in CONTEXT_OPS.items():
        with mona.context("REQ", context_id=context_id, export_timestamp=CONTEXT_TIMESTAMP):
            for fields, action in ops:
                assert mona.export(fields, action=action)
        assert mona.flush(10)
    stats = mona.stats()
    assert stats["dropped"] == {} and stats["messages_failed"] == 0, stats


def test_mona_sdk_and_mona_middleware_store_the_same_contexts(pair) -> None:
    sdk_side, our_side = pair

    _send_with_sdk(sdk_side)
    _send_with_mona_middleware(our_side)

    expected = _stored(sdk_side)
    assert _stored(our_side) == expected
    # The comparison means something: every semantics under test shaped the result.
    assert expected[("MODEL", "m1")] == {
        "score": 0.75,
        "model": "v3",
        "tags": ["a"],
        "latency": [12, 15, 20],
        "tag": ["late"],
    }
    assert expected[("JOB", "j1")] == {"rows": [3, 4]}
    assert expected[("MODEL", "m2")] == {"reset": "yes"}
    assert expected[("MODEL", "m3")] == {"MY_MONA_reserved": 1, "text": "naïve \u2013 ✓ \u2028 end"}
    assert expected[("EVENTS", "e1")] == {"kind": ["click", "view"], "count": 2}
    assert expected[("REQ", "q1")] == {"path": "/a", "status": 500, "retries": [1, 2]}
    assert expected[("REQ", "q2")] == {"b": 2, "c": [3, 4]}


def _history(collector: Collector, key: tuple[str, str]) -> list[tuple[Any, ...]]:
    history = collector.store.context(*key)["history"]
    return [(entry["action"], entry["timestamp"], entry["fields"]) for entry in history]


def test_export_batch_sends_the_sdks_messages_with_their_actions_and_timestamps(pair) -> None:
    sdk_side, our_side = pair

    _send_with_sdk(sdk_side)
    _send_with_mona_middleware(our_side)

    batch_keys = sorted({(m["contextClass"], m["contextId"]) for step in STEPS for m in step})
    for key in batch_keys:
        assert _history(our_side, key) == _history(sdk_side, key), key
    assert _history(sdk_side, ("MODEL", "m2"))[0][1] == 1704164645.0  # the ISO-8601 stamp
    for context_id in CONTEXT_OPS:  # context() folds its exports: fewer messages, same stamp
        stamps = {stamp for _, stamp, _ in _history(our_side, ("REQ", context_id))}
        assert stamps == {CONTEXT_TIMESTAMP}


def test_mona_sdk_with_its_own_user_id_and_credentials_on_a_loopback_collector() -> None:
    """A local collector takes an app's own settings, as localstack takes any AWS keys."""
    accepted: list[tuple[str, str]] = []
    with Collector(accepted=lambda kind, value: accepted.append((kind, value))) as local:
        assert local.accept_any
        own = {
            **local.env(),
            "MONA_SDK_API_KEY": "acc-api-key",
            "MONA_SDK_SECRET": "acc-secret-of-its-own",
            "MONA_SDK_USER_ID": "acc",
        }
        result = _run_sdk(own)

        assert result["single"] is True and result["batch"]["sent"] == 3
        assert local.store.message_count("local") == 0  # the collector's own got nothing
        assert local.store.context("SDK", "one", user="acc")["fields"] == {
            "score": 0.5, "model": "v3", "latency": [10, 20]
        }  # fmt: skip
        assert accepted == [("api key", "acc-api-key"), ("user id", "acc")]
        assert all("acc-secret-of-its-own" not in value for _, value in accepted)
        read = requests.get(local.url + "/api/contexts", params={"user": "acc"}, timeout=5)
        assert {row["id"] for row in read.json()["contexts"]} == {"one", "two"}
        every = requests.get(local.url + "/api/contexts", timeout=5).json()  # no ?user=
        assert {(row["user"], row["id"]) for row in every["contexts"]} == {
            ("acc", "one"), ("acc", "two")
        }  # fmt: skip
        health = requests.get(local.url + "/api/health", timeout=5).json()
        assert health["users"] == ["acc"] and health["latest_user"] == "acc"
        assert health["contexts"] == 2
        missing = requests.get(local.url + "/api/contexts", params={"user": "nobody"}, timeout=5)
        assert missing.status_code == 404


def test_mona_sdk_with_its_own_settings_is_refused_by_a_strict_collector() -> None:
    with Collector(strict=True) as strict:
        own = {**strict.env(), "MONA_SDK_API_KEY": "acc-api-key", "MONA_SDK_SECRET": "nope"}
        script = "from mona_sdk import Client\nprint(Client().authenticator.is_authenticated())"
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, **own, "MONA_SDK_NUM_OF_RETRIES_FOR_AUTHENTICATION": "0"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.stdout.split()[-1] == "False"
        assert strict.store.message_count() == 0


def test_a_loopback_collector_takes_any_bearer_token_and_user_id() -> None:
    body = {"userId": "someone", "messages": [{"arcClass": "C", "contextId": "1", "message": {}}]}
    body["messages"][0]["message"] = {"a": 1}
    with Collector() as local:
        taken = requests.post(
            local.export_url, json=body, headers={"Authorization": "Bearer my-own"}, timeout=5
        )
        no_token = requests.post(local.export_url, json=body, timeout=5)
        assert taken.status_code == 200 and no_token.status_code == 401
        assert local.store.context("C", "1", user="someone")["fields"] == {"a": 1}


def test_every_user_id_of_a_file_collector_shares_its_one_file(tmp_path) -> None:
    db = tmp_path / "c.sqlite3"
    body = {"userId": "acc", "messages": [{"arcClass": "C", "contextId": "1", "message": {"a": 1}}]}
    with Collector(db=str(db)) as local:
        headers = {"Authorization": "Bearer any"}
        assert requests.post(local.export_url, json=body, headers=headers, timeout=5).ok
    assert sorted(path.name for path in tmp_path.iterdir() if "acc" in path.name) == []
    with Collector(db=str(db)) as reopened:
        assert reopened.store.context("C", "1", user="acc")["fields"] == {"a": 1}
        listed = requests.get(reopened.url + "/api/health", params={"user": "acc"}, timeout=5)
        assert listed.json()["users"] == ["acc"] and listed.json()["contexts"] == 1
