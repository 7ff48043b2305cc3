"""Mona's REST protocol against a real local server: each auth mode, payloads, answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import mona_middleware as mona

from .conftest import rest_options
from .mona_server import MonaTestServer

WIRE_KEYS = [
    "message",
    "contextId",
    "action",
    "sampleConfigName",
    "exportTimestamp",
    "sendTimestamp",
    "arcClass",
]


def export_contexts(n: int, cls: str = "REQ", **fields) -> None:
    for i in range(n):
        with mona.context(cls, context_id=f"{cls.lower()}-{i}"):
            mona.export({"i": i, **fields})


def test_mona_auth_gets_a_token_then_exports_with_it(mona_server):
    mona.configure(**rest_options(mona_server))
    export_contexts(3)
    assert mona.flush(5)
    token_calls = [r for r in mona_server.requests if r.path.endswith("/api-token")]
    assert len(token_calls) == 1
    assert token_calls[0].json == {"clientId": "test-key", "secret": "test-secret-value"}
    (export,) = mona_server.export_requests()
    assert export.path == "/export"
    assert export.header("Authorization").startswith("Bearer ")
    assert export.header("Content-Type") == "application/json"
    assert export.json["userId"] == "test-user"  # read from the token's tenantId claim
    assert [list(m) for m in export.json["messages"]] == [WIRE_KEYS] * 3
    assert mona_server.contexts() == {("REQ", f"req-{i}"): {"i": i} for i in range(3)}


def test_no_auth_mode_posts_to_mona_export_without_a_header(mona_server):
    mona.configure(
        auth_mode="NO_AUTH",
        user_id="test-user",
        rest_api_host=f"127.0.0.1:{mona_server.port}",
        use_ssl=False,
        flush_interval=0.05,
    )
    export_contexts(2)
    assert mona.flush(5)
    (export,) = mona_server.export_requests()
    assert export.path == "/monaExport"
    assert export.header("Authorization") is None
    assert export.json["userId"] == "test-user"
    assert mona_server.token_requests == 0
    assert len(mona_server.messages()) == 2


def test_manual_token_mode_sends_the_given_token(monkeypatch):
    with MonaTestServer(manual_token="manual-token-123") as server:
        monkeypatch.setenv("AUTH_MODE", "MANUAL_TOKEN")
        monkeypatch.setenv("MONA_SDK_ACCESS_TOKEN", "manual-token-123")
        monkeypatch.setenv("MONA_SDK_USER_ID", "test-user")
        monkeypatch.setenv("MONA_SDK_OVERRIDE_REST_API_URL", server.export_url)
        mona.configure(flush_interval=0.05)
        export_contexts(1)
        assert mona.flush(5)
        (export,) = server.export_requests()
        assert export.header("Authorization") == "Bearer manual-token-123"
        assert server.token_requests == 0
        assert len(server.messages()) == 1


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


def test_token_is_refreshed_when_due_and_once_on_a_401():
    with MonaTestServer(expires_in=2) as server:  # short-lived: renewed at half its life
        mona.configure(**rest_options(server))
        export_contexts(1)
        assert mona.flush(5)
        time.sleep(1.1)  # the token's age is what is under test
        export_contexts(1, "SECOND")
        assert mona.flush(5)
        assert (server.token_requests, server.refresh_requests) == (1, 1)
        assert [r.status for r in server.export_requests()] == [200, 200]  # renewed before expiry
    with MonaTestServer() as server:
        mona.configure(**rest_options(server))
        export_contexts(1)
        assert mona.flush(5)
        server.expire_tokens()
        export_contexts(1, "AFTER")
        assert mona.flush(5)
        statuses = [r.status for r in server.export_requests()]
        assert statuses == [200, 401, 200]
        assert server.refresh_requests == 1
        assert len(server.messages()) == 2


def test_wrong_credentials_are_counted_not_retried_forever(mona_server):
    mona.configure(**rest_options(mona_server, secret="wrong-secret-value"))
    export_contexts(2)
    assert mona.flush(5)
    assert mona_server.export_requests() == []
    assert mona_server.token_requests == 1  # a 401 from the token endpoint is not transient
    stats = mona.stats()
    assert stats["dropped"] == {"rejected by the backend": 2}
    assert any("refused the credentials" in reason for reason in stats["failure_reasons"])


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


def test_no_secret_or_token_in_any_log_line_at_debug(mona_server, debug_log):
    mona.configure(**rest_options(mona_server))
    export_contexts(2)
    assert mona.flush(5)
    mona_server.expire_tokens()
    export_contexts(1, "AGAIN")
    assert mona.flush(5)
    mona.configure(**rest_options(mona_server, secret="another-wrong-secret"))
    export_contexts(1, "BAD")
    mona.flush(5)
    tokens = set()
    for request in mona_server.requests:
        if request.path.startswith("/identity") and request.json:
            tokens.update(v for v in request.json.values() if isinstance(v, str))
        auth = request.header("Authorization")
        if auth:
            tokens.add(auth.split()[-1])
    secrets = {"test-secret-value", "another-wrong-secret", *tokens}
    text = (
        debug_log.text
        + repr(mona.MonaConfig.resolve(rest_options(mona_server)))
        + json.dumps(mona.stats(), default=str)
    )
    assert debug_log.records, "expected DEBUG output to inspect"
    for secret in secrets - {"test-key"}:
        assert secret not in text


def test_proxy_settings_from_the_environment_are_honoured(mona_server, monkeypatch):
    """The export session reads the environment once per URL, as requests would per POST."""
    from .servers import free_port

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
