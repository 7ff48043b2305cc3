"""JSON for the wire: compact UTF-8, with orjson when installed and the standard library
for what orjson refuses; anything not JSON is a ValueError either way."""

from __future__ import annotations

import json

import pytest

from mona_middleware._util import jsonwire


@pytest.fixture(params=["as installed", "standard library"])
def encoder(request, monkeypatch) -> str:
    """Each test runs with the encoder this environment has, and without orjson."""
    if request.param == "standard library":
        monkeypatch.setattr(jsonwire, "orjson", None)
    return request.param


def test_dumps_is_compact_utf8_json_that_reads_back_the_same(encoder):
    value = {"a": [1, 2.5, None, True], "text": "naïve \u2028 日本", "nested": {"k": "v"}}
    data = jsonwire.dumps(value)
    assert isinstance(data, bytes)
    assert json.loads(data.decode("utf-8")) == value
    assert b", " not in data and b": " not in data  # no padding on the wire


def test_an_integer_beyond_64_bits_is_still_encoded(encoder):
    assert jsonwire.dumps({"n": 2**70}) == b'{"n":1180591620717411303424}'
    assert jsonwire.dumps_lines([{"n": -(2**64)}]) == b'{"n":-18446744073709551616}\n'


@pytest.mark.parametrize(
    "value",
    [{1, 2}, object(), {"k": b"bytes"}, {(1, 2): "tuple key"}],
    ids=["set", "object", "bytes", "tuple-key"],
)
def test_what_json_cannot_carry_is_a_value_error(encoder, value):
    with pytest.raises(ValueError):
        jsonwire.dumps(value)
    with pytest.raises(ValueError):
        jsonwire.dumps_lines([{"ok": 1}, value])


def test_dumps_lines_writes_one_document_per_line(encoder):
    data = jsonwire.dumps_lines([{"a": 1}, {"b": "line\nbreak"}, [3]])
    assert data.endswith(b"\n")
    assert [json.loads(line) for line in data.splitlines()] == [{"a": 1}, {"b": "line\nbreak"}, [3]]
    assert jsonwire.dumps_lines([]) == b""
