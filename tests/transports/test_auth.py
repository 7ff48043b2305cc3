"""Mona's authentication against a real local server: each auth mode, token renewal,
refused credentials, and no secret in any log line."""

from __future__ import annotations

import json
import time

import mona_middleware as mona

from ..conftest import rest_options
from ..helpers import export_contexts
from ..mona_server import MonaTestServer

WIRE_KEYS = [
    "message",
    "contextId",
    "action",
    "sampleConfigName",
    "exportTimestamp",
    "sendTimestamp",
    "arcClass",
]




def test_mona_auth_gets_a_token_then_exports_with_it(mona_server):
    mona.configure(**rest_options(mona_server))
    export_contexts(3, prefix="req-")
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
