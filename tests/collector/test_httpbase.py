"""The JSON request handler: size limits, gzip, JSON errors for bad requests, and never
losing the collector's earlier data."""

from __future__ import annotations

import gzip
import json
import socket

import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from mona_middleware.collector import Collector
from mona_middleware.collector.httpbase import json_values_bound, safe_for_log

from ..helpers import bearer

JSON = {"Content-Type": "application/json"}


def _raw_request(collector: Collector, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """Send bytes on a fresh socket; return the status and the JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    header, _, payload = data.partition(b"\r\n\r\n")
    return int(header.split()[1]), json.loads(payload)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_not_json_is_400(seeded: Collector, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    response = requests.post(seeded.export_url, data=b"{not json", headers=headers, timeout=5)

    assert response.status_code == 400
    assert "JSON" in response.json()["topLevelError"]


def test_nan_is_not_json(seeded: Collector) -> None:
    body = b'{"userId": "local", "messages": [{"arcClass": "C", "message": {"a": NaN}}]}'
    response = requests.post(seeded.noauth_url, data=body, headers=JSON, timeout=5)

    assert response.status_code == 400


def test_huge_body_is_413_without_being_read(seeded: Collector) -> None:
    # Announce 10 MB + 1 byte and send almost nothing: the answer must not wait for it.
    head = (
        b"POST /monaExport HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10485761\r\n\r\n"
    )
    status, body = _raw_request(seeded, head, b'{"userId": ')

    assert status == 413
    assert "larger" in body["topLevelError"]


def test_body_limit_is_configurable() -> None:
    with Collector(max_body=100) as small:
        body = {"userId": "local", "messages": [{"arcClass": "C", "message": {"a": "x" * 200}}]}
        response = requests.post(small.noauth_url, json=body, timeout=5)

        assert response.status_code == 413


def test_gzip_bomb_is_413() -> None:
    with Collector(max_body=10_000) as small:
        bomb = gzip.compress(b" " * 5_000_000)
        assert len(bomb) < 10_000
        response = requests.post(
            small.noauth_url, data=bomb, headers={**JSON, "Content-Encoding": "gzip"}, timeout=5
        )

        assert response.status_code == 413


def test_bad_gzip_and_unknown_encoding_are_refused(seeded: Collector) -> None:
    bad = requests.post(
        seeded.noauth_url, data=b"plain", headers={**JSON, "Content-Encoding": "gzip"}, timeout=5
    )
    truncated = requests.post(
        seeded.noauth_url,
        data=gzip.compress(b'{"userId": "local", "messages": []}')[:-12],
        headers={**JSON, "Content-Encoding": "gzip"},
        timeout=5,
    )
    brotli = requests.post(
        seeded.noauth_url, data=b"{}", headers={**JSON, "Content-Encoding": "br"}, timeout=5
    )

    assert bad.status_code == truncated.status_code == 400
    assert brotli.status_code == 415


def test_token_endpoint_with_garbage_is_400(seeded: Collector) -> None:
    response = requests.post(seeded.token_url, data=b"[", timeout=5)

    assert response.status_code == 400
    assert response.json()["errors"]


def test_malformed_request_line_is_answered_in_json(seeded: Collector) -> None:
    status, body = _raw_request(seeded, b"THIS IS NOT HTTP\r\n\r\n")

    assert status == 400
    assert body["error"]


def test_unread_body_does_not_poison_the_keep_alive_connection(seeded: Collector) -> None:
    with requests.Session() as session:
        refused = session.post(seeded.url + "/api/classes", data=b'{"x": 1}' * 100, timeout=5)
        after = session.get(seeded.url + "/api/classes", timeout=5)

    assert refused.status_code == 405
    assert after.status_code == 200
    assert after.json()["classes"]["C"]["contexts"] == 1


def test_gzip_body_is_accepted(collector: Collector, token: str) -> None:
    body = {
        "userId": "local",
        "messages": [{"arcClass": "C", "contextId": "z", "message": {"a": 1}}],
    }
    headers = {**bearer(token), "Content-Encoding": "gzip", "Content-Type": "application/json"}

    response = requests.post(
        collector.export_url,
        data=gzip.compress(json.dumps(body).encode()),
        headers=headers,
        timeout=5,
    )

    assert response.status_code == 200
    assert collector.store.context("C", "z")["fields"] == {"a": 1}


def _values(value: object) -> int:
    """The JSON values in ``value``, object keys included, as the bound counts them."""
    if isinstance(value, dict):
        return 1 + sum(1 + _values(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(_values(item) for item in value)
    return 1


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab,:{}[]"\\ \u00e9\n')),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.sampled_from('k,:{"\\'), max_size=3), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.sampled_from([0, 1_000_000]))
def test_the_values_bound_is_never_below_the_real_count(value: object, limit: int) -> None:
    # limit 0 forces the exact path (strings blanked out); a large one the raw count.
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        assert json_values_bound(text.encode(), limit) >= _values(value)


def test_the_values_bound_is_exact_on_strings_full_of_commas() -> None:
    body = {"userId": "u", "messages": [{"t": ",:[{" * 1000}]}

    # Not thousands: the string's commas are text.
    assert json_values_bound(json.dumps(body).encode(), 10) == _values(body) == 8


def test_log_lines_are_safe_for_a_terminal() -> None:
    line = safe_for_log('GET /?token=eyJ.abc.def&user=x\x1b[2J\x07 "ok" HTTP/1.1')

    assert line == 'GET /?token=***&user=x\\x1b[2J\\x07 "ok" HTTP/1.1'
