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
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..errors import MonaConfigError
from .log import logger

__all__ = [
    "Spec",
    "boolean",
    "callable_value",
    "choice",
    "env_value",
    "log_level",
    "megabytes",
    "number",
    "option",
    "resolve",
    "specs",
    "text",
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


def resolve(
    spec: Spec,
    layers: Iterator[tuple[str, Mapping[str, Any]]] | list[tuple[str, Mapping[str, Any]]],
    env: Mapping[str, str],
    strict: bool,
    default: Any = dataclasses.MISSING,
) -> Any:
    """The option's value from the first layer that has it, else the environment, else
    ``default`` (the declared one unless given).

    ``layers`` are ``(source, mapping)`` pairs, e.g. ``("option", kwargs)``,
    ``("settings.MONA", settings)``; the source names the value in error messages.
    With ``strict`` an invalid value raises ``MonaConfigError`` naming it; without, it is
    logged and the default used instead, so a typo in one variable cannot stop the data.
    """
    if default is dataclasses.MISSING:
        default = spec.default
        if isinstance(default, Mapping):
            default = MappingProxyType(dict(default))
    for source, values in layers:
        if spec.name in values and values[spec.name] is not None:
            raw, where, parse = values[spec.name], f"{source} {spec.name}", spec.parse
            break
    else:
        if env_value(spec, env) is None:
            return default
        raw, where, parse = env[spec.env], f"environment variable {spec.env}", spec.env_parse
    try:
        return parse(raw)
    except (ValueError, TypeError) as exc:
        shown = HIDDEN if spec.secret else repr(raw)
        return invalid(f"invalid {where}={shown}: {exc}", default, strict)


def invalid(message: str, default: Any, strict: bool) -> Any:
    """Raise (``strict``) or log ``message`` and fall back to ``default``."""
    if strict:
        raise MonaConfigError(message) from None
    logger.error("mona_middleware: %s; using the default %r", message, default)
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
    raise ValueError(f"expected true or false, got {value!r}")


def number(kind: type, low: float, high: float = float("inf")) -> Callable[[Any], Any]:
    """An ``int`` or ``float`` within ``[low, high]``."""

    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        parsed = kind(value)
        if not low <= parsed <= high:
            raise ValueError(f"must be between {low} and {high}, got {parsed}")
        return parsed

    return parse


def choice(choices: tuple[str, ...], upper: bool) -> Callable[[Any], str]:
    """One of ``choices``, compared after upper- or lower-casing."""

    def parse(value: Any) -> str:
        text = str(value).strip()
        text = text.upper() if upper else text.lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def url(value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {text!r}")
    return text


def text(value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return str(value)


def non_empty_text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


def callable_value(value: Any) -> Any:
    if not callable(value):
        raise ValueError(f"must be callable, got {type(value).__name__}")
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
        raise ValueError(f"expected a logging level name or number, got {value!r}")
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
