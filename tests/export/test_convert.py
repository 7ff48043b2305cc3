"""Conversions and bad input: each bad field is dropped alone, named in the log, never raised."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import logging
import math
import uuid
from decimal import Decimal
from pathlib import PurePosixPath

import numpy as np
import pytest

from mona_middleware._export.convert import normalize_timestamp, sanitize_fields


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Opaque:
    pass


CONVERTED = [
    ("datetime", dt.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05"),
    (
        "aware datetime",
        dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc),
        "2026-01-02T00:00:00+00:00",
    ),
    ("date", dt.date(2026, 1, 2), "2026-01-02"),
    ("time", dt.time(3, 4), "03:04:00"),
    ("timedelta", dt.timedelta(seconds=90), 90.0),
    ("decimal", Decimal("1.25"), 1.25),
    ("integral decimal", Decimal("7"), 7),
    ("uuid", uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ("enum", Color.RED, "red"),
    ("int enum", Level.HIGH, 3),
    ("set", {3, 1, 2}, [1, 2, 3]),
    ("frozenset", frozenset({"b", "a"}), ["a", "b"]),
    ("tuple", (1, "a"), [1, "a"]),
    ("numpy float", np.float32(0.5), 0.5),
    ("numpy int", np.int64(7), 7),
    ("numpy bool", np.bool_(True), True),
    ("numpy array", np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
    ("bytes", b"text", "text"),
    ("path", PurePosixPath("/tmp/x"), "/tmp/x"),
    ("dataclass", Point(1, 2.5), {"x": 1, "y": 2.5}),
    (
        "nested",
        {"a": [dt.date(2026, 1, 1), {"d": Decimal("2.5")}]},
        {"a": ["2026-01-01", {"d": 2.5}]},
    ),
    ("int keys", {1: "one"}, {"1": "one"}),
]


@pytest.mark.parametrize(("kind", "value", "expected"), CONVERTED, ids=[c[0] for c in CONVERTED])
def test_values_users_expect_are_converted(kind, value, expected):
    clean, dropped = sanitize_fields({"field": value, "ok": 1}, "C", filter_none=False)
    assert dropped == 0
    assert clean == {"field": expected, "ok": 1}
    json.dumps(clean, allow_nan=False)


def _cycle():
    cyclic: list = []
    cyclic.append(cyclic)
    return cyclic


BAD = [
    ("nan", float("nan")),
    ("infinity", float("inf")),
    ("negative infinity", -math.inf),
    ("nan inside list", [1.0, float("nan")]),
    ("numpy nan", np.float64("nan")),
    ("numpy array with inf", np.array([1.0, np.inf])),
    ("decimal nan", Decimal("NaN")),
    ("object", Opaque()),
    ("function", len),
    ("non utf8 bytes", b"\xff\xfe"),
    ("complex", 1 + 2j),
    ("cyclic list", _cycle()),
    ("object key", {Opaque(): 1}),
    ("generator", (i for i in range(3))),
    ("type", int),
    ("nested object", {"inner": [Opaque()]}),
]


@pytest.mark.parametrize(("kind", "value"), BAD, ids=[b[0] for b in BAD])
def test_bad_values_drop_only_their_field_and_name_it(kind, value, caplog):
    caplog.set_level(logging.ERROR, "mona_middleware")
    clean, dropped = sanitize_fields({"bad_field": value, "good": 2}, "MY_CLASS", filter_none=False)
    assert clean == {"good": 2}
    assert dropped == 1
    assert "bad_field" in caplog.text and "MY_CLASS" in caplog.text
    json.dumps(clean, allow_nan=False)


def test_mona_prefixed_keys_are_renamed_like_mona_sdk():
    fields = {"MONA_score": 1, "MONAX": 2, "MONARCH_ID": 3, "monalisa": 4, "MONA_d": {"MONA_n": 1}}
    clean, _ = sanitize_fields(fields, "C", filter_none=False)
    assert clean == {
        "MY_MONA_score": 1,
        "MONAX": 2,
        "MONARCH_ID": 3,
        "monalisa": 4,
        "MY_MONA_d": {"MONA_n": 1},
    }


def test_the_rename_rule_is_mona_sdk_own_rule():
    validation = pytest.importorskip("mona_sdk.validation")
    fields = {"MONA_score": 1, "MONAX": 2, "MONARCH_ID": 3, "mona_x": 4, "MONA_": 5, "x": {}}
    clean, _ = sanitize_fields(fields, "C", filter_none=False)
    assert clean == validation.update_mona_fields_names(fields)


def test_none_fields_are_kept_or_filtered_as_configured():
    assert sanitize_fields({"a": None, "b": 1}, "C", filter_none=False)[0] == {"a": None, "b": 1}
    assert sanitize_fields({"a": None, "b": 1}, "C", filter_none=True)[0] == {"b": 1}


@pytest.mark.parametrize("good", [1700000000, 1700000000.5, "2026-01-02T03:04:05Z", "2026-01-02"])
def test_valid_timestamps_pass_through(good):
    assert normalize_timestamp(good, "C") == good


def test_datetime_timestamps_become_unix_seconds():
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert normalize_timestamp(moment, "C") == moment.timestamp()


@pytest.mark.parametrize("bad", ["yesterday", float("nan"), -5, True, object(), [1]])
def test_bad_timestamps_become_now_with_an_error(bad, caplog):
    caplog.set_level(logging.ERROR, "mona_middleware")
    before = dt.datetime.now().timestamp()
    stamp = normalize_timestamp(bad, "TS_CLASS")
    assert before - 1 <= stamp <= dt.datetime.now().timestamp() + 1
    assert "invalid exportTimestamp" in caplog.text and "TS_CLASS" in caplog.text
