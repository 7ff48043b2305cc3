"""``settings.MONA``: read, validated and turned into the middleware's ``WebRecorder``.

Options resolve as everywhere in the package: ``settings.MONA`` (the framework's own
config), then the environment, then defaults. A bad option is a deployment mistake:
:func:`settings_problems` lists them for Django's system checks (``manage.py check``,
see ``checks``), and building the middleware raises ``ImproperlyConfigured`` naming the
key (servers such as gunicorn run no checks), at start-up and never per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .._runtime import process
from .._util.options import closest
from .._web.options import ALL_OPTIONS, OPTIONS, WebOptions, split_options
from .._web.recorder import WebRecorder
from ..config import MonaConfig
from ..errors import MonaConfigError

__all__ = ["Problem", "build_recorder", "check_settings", "mona_settings", "settings_problems"]

_TABLES = "the option tables in mona_middleware's README list every option and its values"


class Problem(NamedTuple):
    """One thing wrong with ``settings.MONA``: a check id (``E001``...), what, and a hint."""

    id: str
    msg: str
    hint: str


def mona_settings() -> dict[str, Any]:
    """``settings.MONA`` as a dict of options (empty when unset).

    >>> mona_settings()  # doctest: +SKIP
    {'context_class': 'RECOMMENDATIONS', 'excluded_urls': ['^/health$']}
    """
    value = getattr(settings, "MONA", None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"settings.MONA must be a dict of mona_middleware options, got {type(value).__name__}"
        )
    return dict(value)


def settings_problems(options: Mapping[str, Any] | None = None) -> list[Problem]:
    """Everything wrong with ``settings.MONA`` (or ``options``), without side effects.

    Web options are checked one at a time so each problem names its key even when the
    underlying message (a bad regex, a wrong type) would not.

    >>> settings_problems({"context_klass": "X"})[0].hint
    'did you mean "context_class"?'
    """
    if options is None:
        value = getattr(settings, "MONA", None)
        if value is not None and not isinstance(value, Mapping):
            return [
                Problem(
                    "E001",
                    "settings.MONA must be a dict of mona_middleware options, got "
                    f"{type(value).__name__}",
                    'MONA = {"context_class": "MY_SERVICE", ...}; ' + _TABLES,
                )
            ]
        options = {} if value is None else value
    options = dict(options)
    problems = []
    unknown = sorted(set(options) - ALL_OPTIONS)
    for name in unknown:
        close = closest(str(name), ALL_OPTIONS)
        hint = f'did you mean "{close}"?' if close else _TABLES
        problems.append(Problem("E002", f"settings.MONA: unknown option {name!r}", hint))
    web, exporter = split_options({k: v for k, v in options.items() if k not in unknown})
    for name, value in web.items():
        try:
            WebOptions.resolve({name: value}, env={})
        except MonaConfigError as exc:
            hint = f"{name}: {OPTIONS[name].doc}"
            problems.append(Problem("E003", f"settings.MONA[{name!r}]: {exc}", hint))
    if exporter:
        try:
            MonaConfig.resolve(exporter)
        except MonaConfigError as exc:
            hint = "`mona-middleware check` shows the exporter's resolved options; " + _TABLES
            problems.append(Problem("E004", f"settings.MONA: {exc}", hint))
    return problems


def check_settings(options: Mapping[str, Any] | None = None) -> None:
    """Raise ``ImproperlyConfigured`` for the first of :func:`settings_problems`."""
    problems = settings_problems(options)
    if problems:
        raise ImproperlyConfigured(problems[0].msg)


def build_recorder() -> WebRecorder:
    """The ``WebRecorder`` for a new middleware instance, from ``settings.MONA``.

    Django builds one middleware chain per handler, and the test ``Client`` builds a
    handler per client: exporter options already in force are not applied again, so a
    test suite does not restart (and flush) the process-wide exporter for every client.
    """
    options = mona_settings()
    check_settings(options)
    web, exporter = split_options(options)
    if exporter and MonaConfig.resolve(exporter) == process.config():
        options = web
    try:
        return WebRecorder(options)
    except MonaConfigError as exc:  # pragma: no cover - check_settings found it first
        raise ImproperlyConfigured(f"settings.MONA: {exc}") from None
