"""Django system checks (``manage.py check``, and before ``runserver`` / ``migrate``...).

Registered by the ``mona_middleware.django`` app; each message has an id to silence it
with ``SILENCED_SYSTEM_CHECKS`` and a hint saying what to write instead:

======================  ==================================================================
mona_middleware.E001    ``settings.MONA`` is not a dict
mona_middleware.E002    an unknown option name in ``settings.MONA`` (a typo: the closest)
mona_middleware.E003    an adapter option's value is invalid (named, with what it takes)
mona_middleware.E004    the exporter's options are invalid (credentials, numbers...)
mona_middleware.W001    ``MonaMiddleware`` is not first in ``MIDDLEWARE``
mona_middleware.W002    the app is installed but ``MonaMiddleware`` is not in ``MIDDLEWARE``
mona_middleware.W003    an ASGI application that lifespan does not reach us through
======================  ==================================================================

W003 looks at ``settings.ASGI_APPLICATION`` (Channels, Daphne's runserver) without
importing it (that would build the middleware and start the exporter): Django's own
``get_asgi_application()`` answers lifespan once ``MonaMiddleware`` is built into it, one
of our wrappers does too; a router in front of Django (``ProtocolTypeRouter``) refuses
it. Under uvicorn or gunicorn no check runs, so the middleware logs the same W003 at the
first ASGI request, once per process, when no lifespan reached one of ours by then (see
:func:`asgi_warning`).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core import checks

from .asgi import answers_lifespan
from .conf import settings_problems

__all__ = ["MIDDLEWARE_PATH", "asgi_warning", "check_asgi", "check_middleware", "check_settings"]

MIDDLEWARE_PATH = "mona_middleware.django.MonaMiddleware"
_WRAPPERS = frozenset({"asgi_application", "MonaLifespan", "MonaASGIMiddleware"})
_DJANGO_APP = "get_asgi_application"  # answers lifespan with MonaMiddleware in it
_ASGI_HINT = (
    "in asgi.py: `application = mona_middleware.django.asgi_application()` (or wrap your "
    "router: `MonaLifespan(ProtocolTypeRouter(...))`, from mona_middleware.asgi), so each "
    "worker flushes at lifespan shutdown; keep the server's lifespan on"
)


def register() -> None:
    """Register the checks (idempotent: Django's registry is a set)."""
    tag = "mona_middleware"
    checks.register(check_settings, tag)
    checks.register(check_middleware, tag)
    checks.register(check_asgi, tag)


def check_settings(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[Any]:
    """E001-E004: what is wrong with ``settings.MONA``."""
    return [
        checks.Error(p.msg, hint=p.hint, obj="settings.MONA", id=f"mona_middleware.{p.id}")
        for p in settings_problems()
    ]


def check_middleware(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[Any]:
    """W001 / W002: the middleware's place in ``MIDDLEWARE``."""
    middleware = [str(path) for path in getattr(settings, "MIDDLEWARE", None) or ()]
    if MIDDLEWARE_PATH not in middleware:
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: no request is monitored",
                hint=f'MIDDLEWARE = ["{MIDDLEWARE_PATH}", ...]',
                obj="settings.MIDDLEWARE",
                id="mona_middleware.W002",
            )
        ]
    if middleware[0] != MIDDLEWARE_PATH:
        before = middleware[: middleware.index(MIDDLEWARE_PATH)]
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH} is not first in MIDDLEWARE: what {', '.join(before)} "
                "answer or raise is not monitored, and their time is not in duration_ms",
                hint=f'move it to the top: MIDDLEWARE = ["{MIDDLEWARE_PATH}", ...]',
                obj="settings.MIDDLEWARE",
                id="mona_middleware.W001",
            )
        ]
    return []


def check_asgi(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[Any]:
    """W003: ``settings.ASGI_APPLICATION`` is not wrapped by one of ours."""
    target = getattr(settings, "ASGI_APPLICATION", None)
    if not target or _wrapped(str(target)):
        return []
    return [asgi_warning(f"settings.ASGI_APPLICATION ({target})")]


def asgi_warning(what: str) -> Any:
    """The W003 message, also logged by the middleware when no check ran."""
    return checks.Warning(
        f"{what} does not answer lifespan through mona_middleware: a worker that uvicorn "
        "--workers or gunicorn stops loses what it had not sent yet",
        hint=_ASGI_HINT,
        obj=what,
        id="mona_middleware.W003",
    )


def _wrapped(target: str) -> bool:
    """Whether ``module.attr`` is (or reads as) one of our wrappers; True when unsure."""
    module_name, _, attr = target.rpartition(".")
    loaded = sys.modules.get(module_name)
    if loaded is not None and hasattr(loaded, attr):
        return answers_lifespan(getattr(loaded, attr))
    try:
        spec = importlib.util.find_spec(module_name)
        origin = spec.origin if spec is not None else None
        if not origin or not origin.endswith(".py"):
            return True
        with open(origin, encoding="utf-8") as source:
            tree = ast.parse(source.read())
    except (ImportError, ValueError, OSError, SyntaxError):
        return True  # Django's own checks report an ASGI_APPLICATION that does not load
    values: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            named = any(isinstance(t, ast.Name) and t.id == attr for t in node.targets)
        elif isinstance(node, ast.AnnAssign):
            named = isinstance(node.target, ast.Name) and node.target.id == attr
        else:
            continue
        if named and node.value is not None:
            values.append(node.value)
    if not values:
        return True  # no plain assignment we can read: say nothing rather than guess
    if _in_middleware() and any(_DJANGO_APP in _names(value) for value in values):
        return True  # Django's own handler, lifespan answered by the middleware built in it
    return any(_names(call) & _WRAPPERS for value in values for call in ast.walk(value))


def _in_middleware() -> bool:
    return MIDDLEWARE_PATH in [str(path) for path in getattr(settings, "MIDDLEWARE", None) or ()]


def _names(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return {func.id}
        if isinstance(func, ast.Attribute):
            return {func.attr}
    return set()
