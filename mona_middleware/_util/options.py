"""The option spec: every setting a user can give, declared once, with its variable and parser.

An option is a field of a frozen dataclass (``MonaConfig`` for the exporter,
``WebOptions`` for the adapters, ...) made by ``option()``, which records its
environment variable, how to parse an argument and the variable, and a line of
documentation. Resolution, error messages, ``mona-middleware check`` and the README's
tables all read these declarations, so they cannot drift apart.

Resolution order, everywhere: explicit arguments, then the framework's own config
(``app.config``, ``settings.MONA``), then the environment, then the default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..errors import MonaConfigError
from .log import logger, safe_repr

__all__ = [
    "Problem",
    "Spec",
    "boolean",
    "callable_value",
    "choice",
    "closest",
    "env_value",
    "log_level",
    "megabytes",
    "number",
    "option",
    "resolve",
    "specs",
    "text",
    "unknown_options",
    "url",
]

# What a value that is never shown (an api key...) is replaced by in error messages.
HIDDEN = "***"


@dataclass(frozen=True)
class Spec:
    """One option's declaration, as ``option()`` stores it in the field's metadata."""

    name: str
    default: Any
    env: str | None
    parse: Callable[[Any], Any]
    env_parse: Callable[[str], Any]
    doc: str
    shown_default: str | None  # how the docs show the default, when ``repr`` would not do
    secret: bool

    def default_text(self) -> str:
        """The default as the README's tables and ``check`` show it."""
        if self.shown_default is not None:
            return self.shown_default
        value = self.default
        if value is None or (isinstance(value, (Mapping, tuple, frozenset)) and not value):
            return "none"
        return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def option(
    default: Any,
    env: str | None,
    parse: Callable[[Any], Any],
    *,
    doc: str = "",
    env_parse: Callable[[str], Any] | None = None,
    shown_default: str | None = None,
    secret: bool = False,
) -> Any:
    """A dataclass field that knows its environment variable, parsers and documentation.

    ``env_parse``, when given, reads the variable instead of ``parse``: a Mona variable
    must mean what it means to mona_sdk, while an argument may be ``True`` or ``"yes"``.
    """
    kwargs: dict[str, Any] = {"repr": not secret}
    if isinstance(default, Mapping):
        frozen = dict(default)
        kwargs["default_factory"] = lambda: MappingProxyType(dict(frozen))
    else:
        kwargs["default"] = default
    metadata = {
        "spec": {
            "default": default,
            "env": env,
            "parse": parse,
            "env_parse": env_parse or parse,
            "doc": doc,
            "shown_default": shown_default,
            "secret": secret,
        }
    }
    return dataclasses.field(metadata=metadata, **kwargs)


def specs(cls: type) -> dict[str, Spec]:
    """The options of a dataclass declared with ``option()``, by name, in declaration order."""
    found = {}
    for item in dataclasses.fields(cls):
        raw = item.metadata.get("spec")
        if raw is not None:
            found[item.name] = Spec(name=item.name, **raw)
    return found


def env_value(spec: Spec, env: Mapping[str, str]) -> str | None:
    """The variable's value when it is set to something other than blanks."""
    value = env.get(spec.env, "") if spec.env else ""
    return value if value.strip() else None


@dataclass(frozen=True)
class Problem:
    """A value that cannot be used as given: where it came from, why, and what stands in.

    ``str()`` is the sentence every voice uses, the log, ``configure()``'s exception and
    ``mona-middleware check``: ``MONA_MIDDLEWARE_BATCH_SIZE=abc is not a whole number;
    using 500``. ``fatal`` problems stop the data from reaching where it should go.
    """

    subject: str  # "MONA_MIDDLEWARE_BATCH_SIZE=abc", "option batch_size='abc'"
    reason: str  # "is not a whole number" (empty when the subject says it all)
    instead: str | None = None  # what is used in its place; None: nothing is
    fatal: bool = False  # the data cannot reach where it was meant to go

    @property
    def note(self) -> bool:
        """Worth saying but used as given: neither replaced nor fatal."""
        return self.instead is None and not self.fatal

    def error(self) -> str:
        """The sentence without what stands in, as a strict ``configure()`` raises it."""
        return sentence(self.subject, self.reason)

    def __str__(self) -> str:
        text = sentence(self.subject, self.reason)
        return text if self.instead is None else f"{text}; using {self.instead}"


# A reason that already reads as a predicate follows its subject with a space, any other
# (a library's message) after a colon.
_PREDICATE = re.compile(r"(is|are|must|has|have|needs|cannot|does|do|was|would|says)\b")
_PLAIN_VALUE = re.compile(r"[\w.,:/@+*~%=-]+")


def sentence(subject: str, reason: str) -> str:
    """``subject`` and ``reason`` as one clause: "X=1 is not ..." or "X=1: <message>"."""
    if not reason:
        return subject
    return f"{subject} {reason}" if _PREDICATE.match(reason) else f"{subject}: {reason}"


def shown_value(value: Any, secret: bool = False, *, quoted: bool = False) -> str:
    """A value as a message shows it: a plain word as it is (or its repr when ``quoted``,
    as in Python code), anything else as its repr, a secret as ``***``."""
    if secret:
        return HIDDEN
    if isinstance(value, str) and not quoted and _PLAIN_VALUE.fullmatch(value):
        return value
    return safe_repr(value)


def shown_default(value: Any) -> str:
    """A resolved value in words, for "using ..." (``true``, ``500``, ``no value``)."""
    if value is None:
        return "no value (the default)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return json.dumps(dict(value), default=str) if value else "none"
    if isinstance(value, (tuple, frozenset, set, list)) and not value:
        return "none"
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, float):
        return _number(value)
    return str(value)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``name`` most likely misspells, if any is close: the one spell-check
    behind every "did you mean" (Django's system check, keyword options, ``app.config``
    keys, environment variables, command-line options).

    Words both share at the start are left out of the comparison, so that
    ``MONA_MIDDLEWARE_`` alone never makes two variables look alike.
    """
    best, best_ratio = None, 0.6
    for candidate in sorted(candidates):
        shared = next(
            (i for i, (a, b) in enumerate(zip(name, candidate, strict=False)) if a != b),
            min(len(name), len(candidate)),
        )
        cut = name.rfind("_", 0, shared) + 1
        ratio = difflib.SequenceMatcher(None, name[cut:], candidate[cut:]).ratio()
        if ratio > best_ratio:
            best, best_ratio = candidate, ratio
    return best


def unknown_options(unknown: Iterable[str], known: Collection[str], what: str = "option") -> str:
    """``unknown mona_middleware option: 'context_clas' (did you mean 'context_class'?)``."""
    parts = []
    for name in sorted(map(str, unknown)):
        match = closest(name, known)
        parts.append(repr(name) + (f" (did you mean {match!r}?)" if match else ""))
    plural = "s" if len(parts) > 1 else ""
    return f"unknown mona_middleware {what}{plural}: " + ", ".join(parts)


def resolve(
    spec: Spec,
    layers: Iterator[tuple[str, Mapping[str, Any]]] | list[tuple[str, Mapping[str, Any]]],
    env: Mapping[str, str],
    strict: bool,
    default: Any = dataclasses.MISSING,
    problems: list[Problem] | None = None,
) -> Any:
    """The option's value from the first layer that has it, else the environment, else
    ``default`` (the declared one unless given).

    ``layers`` are ``(source, mapping)`` pairs, e.g. ``("option", kwargs)``,
    ``("settings.MONA", settings)``; the source names the value in error messages.
    With ``strict`` an invalid value raises ``MonaConfigError`` naming it; without, the
    default is used instead, so a typo in one variable cannot stop the data, and the
    problem is appended to ``problems`` when given (``check`` and ``MonaConfig`` collect
    every one), else logged.
    """
    if default is dataclasses.MISSING:
        default = spec.default
        if isinstance(default, Mapping):
            default = MappingProxyType(dict(default))
    for source, values in layers:
        if spec.name in values and values[spec.name] is not None:
            raw, parse = values[spec.name], spec.parse
            subject = f"{source} {spec.name}={shown_value(raw, spec.secret, quoted=True)}"
            break
    else:
        if env_value(spec, env) is None:
            return default
        raw, parse = env[spec.env], spec.env_parse  # type: ignore[index]  # set: env_value()
        subject = f"{spec.env}={shown_value(raw, spec.secret)}"
    try:
        return parse(raw)
    except (ValueError, TypeError) as exc:
        problem = Problem(subject, str(exc), shown_default(default))
        return invalid(problem, default, strict, problems)
    except MonaConfigError:
        raise
    except Exception as exc:  # a value whose own methods raise (__str__, __iter__...)
        reason = f"could not be read ({type(exc).__name__} raised)"
        return invalid(Problem(subject, reason, shown_default(default)), default, strict, problems)


def invalid(
    problem: Problem, default: Any, strict: bool, problems: list[Problem] | None = None
) -> Any:
    """Raise (``strict``), or note ``problem`` (in ``problems``, else the log) and fall
    back to ``default``."""
    if strict:
        raise MonaConfigError(problem.error()) from None
    if problems is not None:
        problems.append(problem)
    else:
        logger.error("mona_middleware: %s", problem)
    return default


# -- parsers: each takes an argument or a variable's text, returns the value or raises
# ValueError with a reason that reads well after "invalid option x=...: "


def boolean(value: Any) -> bool:
    """``True``/``False``, or text: 1/0, true/false, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("is not true or false (1/0, yes/no, on/off also work)")


def number(kind: type, low: float, high: float = float("inf")) -> Callable[[Any], Any]:
    """An ``int`` or ``float`` within ``[low, high]``."""

    def parse(value: Any) -> Any:
        what = "a whole number" if kind is int else "a number"
        if isinstance(value, bool):
            raise ValueError(f"is not {what}")
        try:
            parsed = kind(value.strip() if isinstance(value, str) else value)
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"is not {what}") from None
        if parsed != parsed or not low <= parsed <= high:  # NaN is never in range
            raise ValueError(f"must be between {_number(low)} and {_number(high)}")
        return parsed

    return parse


def _number(value: float) -> str:
    if value == float("inf"):
        return "infinity"
    return str(int(value)) if float(value).is_integer() else str(value)


def choice(choices: tuple[str, ...], upper: bool) -> Callable[[Any], str]:
    """One of ``choices``, compared after upper- or lower-casing."""

    def parse(value: Any) -> str:
        text = str(value).strip()
        text = text.upper() if upper else text.lower()
        if text not in choices:
            raise ValueError(f"is not one of {', '.join(choices)}")
        return text

    return parse


def url(value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(("http://", "https://")):
        raise ValueError("is not a URL starting with http:// or https://")
    return text


def text(value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError(f"is not text (it is a {type(value).__name__})")
    return str(value)


def non_empty_text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("is not a non-empty string")
    return value


def callable_value(value: Any) -> Any:
    if not callable(value):
        raise ValueError(f"must be callable (it is a {type(value).__name__})")
    return value


def megabytes(value: Any) -> int:
    """Megabytes (a number, fractions allowed) as bytes."""
    return int(number(float, 0, 1_000_000)(value) * 1024 * 1024)


def log_level(value: Any) -> int:
    """A level name (``DEBUG``, ``warning``) or number (``10``, as both Mona seeds document)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    stripped = str(value).strip()
    if stripped.isdigit():
        return int(stripped)
    level = logging.getLevelName(stripped.upper())
    if not isinstance(level, int):
        raise ValueError("is not a logging level (DEBUG, INFO, WARNING, ERROR or a number)")
    return level


def markdown_table(declared: Mapping[str, Spec], *, env_column: bool) -> str:
    """The README's table of these options, from their declarations.

    With ``env_column`` each variable gets a column of its own (the exporter's table);
    without, it is named beside the default (the adapters' table, where few have one).
    """
    if env_column:
        lines = ["| option | environment variable | default | what |", "| --- | --- | --- | --- |"]
    else:
        lines = ["| option | default | what |", "| --- | --- | --- |"]
    for name, spec in declared.items():
        default = spec.default_text()
        if env_column:
            env = f"`{spec.env}`" if spec.env else "(option only)"
            lines.append(f"| `{name}` | {env} | {default} | {spec.doc} |")
        else:
            if spec.env:
                default += f" (env `{spec.env}`)"
            lines.append(f"| `{name}` | {default} | {spec.doc} |")
    return "\n".join(lines)
