"""Mona's REST transport against a real local server: payloads, answers, batching,
gzip, proxies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import mona_middleware as mona

from ..conftest import rest_options
from ..helpers import export_contexts


def test_payload_has_exactly_the_fields_mona_sdk_sends(mona_server):
    """Run the real mona_sdk against the same server and compare what went on the wire."""
    script = textwrap.dedent(
        """
        from mona_sdk.client import Client, MonaSingleMessage
        client = Client("test-key", "test-secret-value")
        client.export(MonaSingleMessage(message={"score": 1}, contextClass="REQ",
                                        contextId="sdk-1", exportTimestamp=1700000000,
                                        action="OVERWRITE"))
        """
    )
    env = {
        **os.environ,
        "MONA_SDK_AUTH_API_TOKEN_URL": mona_server.token_url,
        "MONA_SDK_REFRESH_TOKEN_URL": mona_server.refresh_url,
        "MONA_SDK_OVERRIDE_REST_API_URL": mona_server.export_url,
    }
    subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, timeout=60, capture_output=True
    )
    (sdk_request,) = mona_server.export_requests()
    mona_server.clear()
    mona.configure(**rest_options(mona_server))
    with mona.context("REQ", context_id="ours-1", export_timestamp=1700000000):
        mona.export({"score": 1})
    assert mona.flush(5)
    (our_request,) = mona_server.export_requests()
    assert sorted(our_request.json) == sorted(sdk_request.json) == ["messages", "userId"]
    ours, sdk = our_request.json["messages"][0], sdk_request.json["messages"][0]
    assert list(ours) == list(sdk)
    assert {k: v for k, v in ours.items() if k != "contextId"} == {
        k: v for k, v in sdk.items() if k != "contextId"
    }


def test_partial_failure_and_top_level_error_are_counted_by_reason(mona_server):
    mona.configure(**rest_options(mona_server))
    mona_server.respond_with(
        400,
        body={"failed": 2, "failure_reasons": {"0": "field x: bad type", "2": "field x: bad type"}},
        times=1,
    )
    export_contexts(3)
    assert mona.flush(5)
    mona_server.top_level_error("userId does not exist", times=1)
    export_contexts(4, "OTHER")
    assert mona.flush(5)
    stats = mona.stats()
    assert stats["messages_sent"] == 1
    assert stats["messages_failed"] == 6
    assert stats["failure_reasons"] == {
        "field x: bad type": 2,
        "topLevelError: userId does not exist": 4,
    }
    assert stats["dropped"] == {"rejected by the backend": 6}


def test_batches_respect_batch_size_over_keep_alive_connections(mona_server):
    mona.configure(**rest_options(mona_server, batch_size=100, flush_interval=5))
    export_contexts(1000)
    assert mona.flush(10)
    sizes = [len(r.json["messages"]) for r in mona_server.export_requests()]
    assert sum(sizes) == 1000 and max(sizes) <= 100 and len(sizes) >= 10
    assert mona_server.connections <= 1 + 2  # token + one per sender thread
    assert len(mona_server.contexts()) == 1000


def test_proxy_settings_from_the_environment_are_honoured(mona_server, monkeypatch):
    """The export session reads the environment once per URL, as requests would per POST."""
    from ..servers import free_port

    dead_proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens: a proxied POST fails
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    options = {
        "auth_mode": "NO_AUTH",  # no token request: only the export goes through the proxy
        "user_id": "test-user",
        "rest_api_host": f"127.0.0.1:{mona_server.port}",
        "use_ssl": False,
        "flush_interval": 0.05,
        "max_retries": 0,
        "spool": False,
    }
    mona.configure(**options)
    export_contexts(1, cls="VIA_PROXY")
    assert mona.flush(5)
    assert mona_server.export_requests() == []  # it went to the proxy, not to the server
    assert mona.stats()["dropped_total"] == 1
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a new exporter reads it again
    mona.configure(**options, batch_size=7)
    export_contexts(1, cls="DIRECT")
    assert mona.flush(5)
    assert [m["arcClass"] for m in mona_server.messages()] == ["DIRECT"]


def test_gzip_bodies(mona_server):
    mona.configure(**rest_options(mona_server, gzip=True))
    with mona.context("Z", context_id="z1"):
        mona.export({"text": "x" * 1000})
    assert mona.flush(5)
    (request,) = mona_server.export_requests()
    assert request.header("Content-Encoding") == "gzip" and len(request.body) < 300
    assert mona_server.contexts() == {("Z", "z1"): {"text": "x" * 1000}}
