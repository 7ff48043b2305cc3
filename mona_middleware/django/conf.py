"""``settings.MONA``: read, validated and turned into the middleware's ``WebMonitor``.

Options resolve as everywhere in the package: ``settings.MONA`` (the framework's own
config), then the environment, then defaults. A bad option is a deployment mistake, so
it raises ``ImproperlyConfigured`` naming the key, at start-up and never per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .._runtime import process
from .._web.options import WebOptions, split_options
from .._web.recorder import WebMonitor
from ..config import MonaConfig
from ..errors import MonaConfigError

__all__ = ["build_monitor", "check_settings", "mona_settings"]


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


def check_settings(options: Mapping[str, Any] | None = None) -> None:
    """Validate every option without side effects: no exporter, no signal handler.

    Web options are checked one at a time so the error names the key even when the
    underlying message (a bad regex, a wrong type) would not.
    """
    options = mona_settings() if options is None else dict(options)
    try:
        web, exporter = split_options(options)
    except MonaConfigError as exc:
        raise ImproperlyConfigured(f"settings.MONA: {exc}") from None
    for name, value in web.items():
        try:
            WebOptions.resolve({name: value}, env={})
        except MonaConfigError as exc:
            raise ImproperlyConfigured(f"settings.MONA[{name!r}]: {exc}") from None
    if exporter:
        try:
            MonaConfig.resolve(exporter)
        except MonaConfigError as exc:
            raise ImproperlyConfigured(f"settings.MONA: {exc}") from None


def build_monitor() -> WebMonitor:
    """The ``WebMonitor`` for a new middleware instance, from ``settings.MONA``.

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
        return WebMonitor(options)
    except MonaConfigError as exc:  # pragma: no cover - check_settings found it first
        raise ImproperlyConfigured(f"settings.MONA: {exc}") from None
