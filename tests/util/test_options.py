"""The option spec: each option declared once, resolved from the first layer that has it,
then its environment variable, then its default; a bad value named, or logged and replaced."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

import mona_middleware as mona
from mona_middleware._util.options import (
    boolean,
    choice,
    log_level,
    megabytes,
    number,
    option,
    resolve,
    specs,
    text,
    url,
)


@dataclass(frozen=True)
class Sample:
    """Options declared as the package declares its own."""

    size: int = option(10, "SAMPLE_SIZE", number(int, 1, 100), doc="how many")
    token: str | None = option(None, "SAMPLE_TOKEN", text, doc="a credential", secret=True)
    verbose: bool = option(False, "SAMPLE_VERBOSE", boolean, doc="say more")


SPECS = specs(Sample)


def test_specs_are_the_declared_options_in_declaration_order():
    assert list(SPECS) == ["size", "token", "verbose"]
    size = SPECS["size"]
    assert (size.default, size.env, size.doc, size.secret) == (10, "SAMPLE_SIZE", "how many", False)
    assert SPECS["token"].secret is True
    assert "s3cr3t" not in repr(Sample(token="s3cr3t"))  # a secret option stays out of repr


def test_the_first_layer_wins_then_the_environment_then_the_default():
    size = SPECS["size"]
    layers = [("option", {"size": 5}), ("app.config", {"size": 7})]
    env = {"SAMPLE_SIZE": "9"}
    assert resolve(size, layers, env, strict=True) == 5
    assert resolve(size, [("option", {"size": None}), *layers[1:]], env, strict=True) == 7
    assert resolve(size, [], env, strict=True) == 9  # the variable, parsed
    assert resolve(size, [], {"SAMPLE_SIZE": "  "}, strict=True) == 10  # blank: unset
    assert resolve(size, [], {}, strict=True, default=3) == 3


def test_an_invalid_value_raises_naming_where_it_came_from():
    size = SPECS["size"]
    with pytest.raises(mona.MonaConfigError, match=r"^option size=0 must be between 1 and 100$"):
        resolve(size, [("option", {"size": 0})], {}, strict=True)
    with pytest.raises(mona.MonaConfigError, match=r"^SAMPLE_SIZE=x is not a whole number$"):
        resolve(size, [], {"SAMPLE_SIZE": "x"}, strict=True)


def test_without_strict_a_bad_value_is_logged_and_the_default_used(caplog):
    caplog.set_level(logging.ERROR)
    assert resolve(SPECS["size"], [], {"SAMPLE_SIZE": "lots"}, strict=False) == 10
    assert "SAMPLE_SIZE=lots is not a whole number; using 10" in caplog.text
    problems: list = []  # or collected, every one, for `check` to print
    assert resolve(SPECS["size"], [], {"SAMPLE_SIZE": "a b"}, False, problems=problems) == 10
    assert [str(problem) for problem in problems] == [
        "SAMPLE_SIZE='a b' is not a whole number; using 10"
    ]


def test_a_secret_value_is_never_shown_in_the_error():
    with pytest.raises(mona.MonaConfigError) as raised:
        resolve(SPECS["token"], [("option", {"token": {"key": "s3cr3t"}})], {}, strict=True)
    assert str(raised.value) == "option token=*** is not text (it is a dict)"
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(
    ("parse", "given", "parsed"),
    [
        (boolean, "Yes", True),
        (boolean, " off ", False),
        (boolean, True, True),
        (number(int, 1, 10), "5", 5),
        (number(float, 0), "0.25", 0.25),
        (choice(("file", "rest"), upper=False), " REST ", "rest"),
        (url, " https://mona.example/export ", "https://mona.example/export"),
        (text, 42, "42"),
        (log_level, "warning", logging.WARNING),
        (log_level, "10", 10),
        (megabytes, "1.5", 1_572_864),
    ],
    ids=[
        "boolean-yes",
        "boolean-off",
        "boolean-bool",
        "int",
        "float",
        "choice",
        "url",
        "text-int",
        "level-name",
        "level-number",
        "megabytes",
    ],
)
def test_parsers_accept_what_they_document(parse, given, parsed):
    assert parse(given) == parsed


@pytest.mark.parametrize(
    ("parse", "given"),
    [
        (boolean, "maybe"),
        (number(int, 1, 10), "11"),
        (number(int, 1, 10), True),  # a bool is not a number here
        (number(int, 1, 10), "five"),
        (choice(("file", "rest"), upper=False), "kafka"),
        (url, "ftp://mona.example"),
        (text, True),
        (log_level, "loud"),
        (megabytes, "-1"),
    ],
    ids=[
        "boolean",
        "int-too-big",
        "int-bool",
        "int-text",
        "choice",
        "url-scheme",
        "text-bool",
        "level",
        "megabytes-negative",
    ],
)
def test_parsers_refuse_the_rest_with_a_value_error(parse, given):
    with pytest.raises(ValueError):
        parse(given)
