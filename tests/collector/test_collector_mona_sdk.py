"""The public ``mona_sdk`` client, unchanged, talks to the collector.

The SDK reads its endpoints from the environment at import time and keeps token state
in module globals, so it runs in a subprocess with the collector's ``env()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

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
