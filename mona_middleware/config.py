"""One frozen configuration, resolved once: explicit options, then environment, then defaults.

The environment is the one a Mona user already has for ``mona_sdk`` (``MONA_SDK_*``,
``AUTH_MODE``, ``MONA_DISABLE_ALL``); knobs of our own are ``MONA_MIDDLEWARE_*``. Every
option is declared once in ``_OPTIONS`` with its variable, parser and default, so the
option list, the env names, the validation and ``mona-middleware check`` cannot drift.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import MonaConfigError

AUTH_MODES = ("MONA", "NO_AUTH", "MANUAL_TOKEN")
TRANSPORTS = ("auto", "rest", "file", "memory")
SECRET_OPTIONS = frozenset({"api_key", "secret", "access_token"})
DEFAULT_TOKEN_URL = "https://monalabs.frontegg.com/identity/resources/auth/v1/api-token"
DEFAULT_REFRESH_URL = DEFAULT_TOKEN_URL + "/token/refresh"
DEFAULT_FILE_PATH = "mona-messages.jsonl"


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _number(kind: type, low: float, high: float = float("inf")) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        number = kind(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {number}")
        return number

    return parse


def _choice(choices: tuple[str, ...], upper: bool) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip()
        text = text.upper() if upper else text.lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _url(value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {text!r}")
    return text


def _text(value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return str(value)


def _transport(value: Any) -> Any:
    if callable(getattr(value, "send", None)) and callable(getattr(value, "close", None)):
        return value  # a Transport instance, e.g. InMemoryTransport() in tests
    return _choice(TRANSPORTS, upper=False)(value)


def _fields(value: Any) -> Mapping[str, Any]:
    """A dict, a JSON object, or ``"k: v, k2: v2"`` as apptuit's global tags were."""
    if isinstance(value, Mapping):
        parsed = dict(value)
    elif str(value).strip().startswith("{"):
        parsed = json.loads(value)
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object")
    else:
        parsed = {}
        for pair in filter(None, (p.strip() for p in str(value).split(","))):
            key, sep, val = pair.partition(":")
            if not sep or not key.strip():
                raise ValueError(f"expected 'key: value' pairs, got {pair!r}")
            parsed[key.strip()] = val.strip()
    if not all(isinstance(key, str) for key in parsed):
        raise ValueError("field names must be strings")
    return MappingProxyType(parsed)


# option name -> (environment variable, parser, default)
_OPTIONS: dict[str, tuple[str | None, Callable[[Any], Any], Any]] = {
    "api_key": ("MONA_SDK_API_KEY", _text, None),
    "secret": ("MONA_SDK_SECRET", _text, None),
    "user_id": ("MONA_SDK_USER_ID", _text, None),
    "access_token": ("MONA_SDK_ACCESS_TOKEN", _text, None),
    "auth_mode": ("AUTH_MODE", _choice(AUTH_MODES, upper=True), "MONA"),
    "auth_api_token_url": ("MONA_SDK_AUTH_API_TOKEN_URL", _url, DEFAULT_TOKEN_URL),
    "refresh_token_url": ("MONA_SDK_REFRESH_TOKEN_URL", _url, DEFAULT_REFRESH_URL),
    "use_refresh_tokens": ("MONA_SDK_USE_REFRESH_TOKENS", _bool, True),
    "auth_retries": ("MONA_SDK_NUM_OF_RETRIES_FOR_AUTHENTICATION", _number(int, 0, 20), 3),
    "auth_retry_wait": (
        "MONA_SDK_WAIT_TIME_FOR_AUTHENTICATION_RETRIES_SEC",
        _number(float, 0, 60),
        2.0,
    ),
    "rest_api_host": ("MONA_SDK_OVERRIDE_REST_API_HOST", _text, None),
    "rest_api_url": ("MONA_SDK_OVERRIDE_REST_API_URL", _url, None),
    "use_ssl": ("MONA_SDK_SHOULD_USE_SSL", _bool, True),
    "filter_none_fields": ("MONA_SDK_FILTER_NONE_FIELDS_ON_EXPORT", _bool, False),
    "raise_export_exceptions": ("MONA_SDK_RAISE_EXPORT_EXCEPTIONS", _bool, False),
    "disable_all": ("MONA_DISABLE_ALL", _bool, False),
    "transport": ("MONA_MIDDLEWARE_TRANSPORT", _transport, "auto"),
    "file_path": ("MONA_MIDDLEWARE_FILE_PATH", _text, DEFAULT_FILE_PATH),
    "queue_size": ("MONA_MIDDLEWARE_QUEUE_SIZE", _number(int, 1, 10_000_000), 10_000),
    "batch_size": ("MONA_MIDDLEWARE_BATCH_SIZE", _number(int, 1, 10_000), 500),
    "flush_interval": ("MONA_MIDDLEWARE_FLUSH_INTERVAL", _number(float, 0.001, 3600), 1.0),
    "sender_threads": ("MONA_MIDDLEWARE_SENDER_THREADS", _number(int, 1, 32), 2),
    "http_timeout": ("MONA_MIDDLEWARE_HTTP_TIMEOUT", _number(float, 0.01, 600), 10.0),
    "shutdown_timeout": ("MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT", _number(float, 0, 600), 5.0),
    "global_fields": ("MONA_MIDDLEWARE_GLOBAL_FIELDS", _fields, MappingProxyType({})),
}


@dataclass(frozen=True)
class MonaConfig:
    """The resolved settings; build it with ``configure()`` or ``MonaConfig.resolve()``.

    >>> MonaConfig.resolve({"transport": "memory"}, env={}).batch_size
    500
    """

    api_key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    user_id: str | None = None
    access_token: str | None = field(default=None, repr=False)
    auth_mode: str = "MONA"
    auth_api_token_url: str = DEFAULT_TOKEN_URL
    refresh_token_url: str = DEFAULT_REFRESH_URL
    use_refresh_tokens: bool = True
    auth_retries: int = 3
    auth_retry_wait: float = 2.0
    rest_api_host: str | None = None
    rest_api_url: str | None = None
    use_ssl: bool = True
    filter_none_fields: bool = False
    raise_export_exceptions: bool = False
    disable_all: bool = False
    transport: Any = "auto"
    file_path: str = DEFAULT_FILE_PATH
    queue_size: int = 10_000
    batch_size: int = 500
    flush_interval: float = 1.0
    sender_threads: int = 2
    http_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    global_fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def resolve(
        cls,
        options: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        strict: bool = True,
    ) -> MonaConfig:
        """Resolve options over ``env`` over defaults.

        With ``strict`` an invalid value raises ``MonaConfigError`` naming it; without
        (the lazy, implicit configuration) it is logged and its default used instead,
        so a typo in one variable cannot stop the rest of the data.
        """
        options = dict(options or {})
        env = os.environ if env is None else env
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise MonaConfigError(f"unknown mona_middleware option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, (var, parse, default) in _OPTIONS.items():
            values[name] = _resolve_one(name, var, parse, default, options, env, strict)
        if "auth_mode" not in options and not env.get("AUTH_MODE"):
            sdk_auth = env.get("MONA_SDK_SHOULD_USE_AUTHENTICATION", "")
            if sdk_auth and not _resolve_bool_quiet(sdk_auth, True):
                values["auth_mode"] = "NO_AUTH"
        config = cls(**values)
        problem = config.credentials_problem()
        if problem and (config.transport == "rest" or config.has_credentials()):
            if strict:
                raise MonaConfigError(problem)
            from ._log import logger

            logger.error("mona_middleware: %s; exporting to the file %s", problem, config.file_path)
            config = dataclasses.replace(config, transport="file")
        return config

    def has_credentials(self) -> bool:
        """True when the user configured any way of reaching Mona at all."""
        return bool(
            self.api_key
            or self.secret
            or self.access_token
            or self.rest_api_url
            or self.rest_api_host
            or self.auth_mode != "MONA"
        )

    def credentials_problem(self) -> str | None:
        """Why the REST transport cannot work with these settings, naming what is missing."""
        if self.auth_mode == "MONA" and not (self.api_key and self.secret):
            missing = "MONA_SDK_SECRET" if self.api_key else "MONA_SDK_API_KEY"
            if not self.api_key and not self.secret:
                missing = "MONA_SDK_API_KEY and MONA_SDK_SECRET"
            return f"AUTH_MODE=MONA needs {missing} (options api_key/secret)"
        if self.auth_mode == "MANUAL_TOKEN" and not self.access_token:
            return "AUTH_MODE=MANUAL_TOKEN needs MONA_SDK_ACCESS_TOKEN (option access_token)"
        if self.auth_mode == "NO_AUTH" and not self.user_id:
            return "AUTH_MODE=NO_AUTH needs MONA_SDK_USER_ID (option user_id)"
        return None

    def transport_choice(self) -> tuple[str, str]:
        """(transport name, why it was chosen), for the exporter and ``check``."""
        if not isinstance(self.transport, str):
            return type(self.transport).__name__, "a transport object was configured"
        if self.transport != "auto":
            return self.transport, f"transport={self.transport!r} was configured"
        if self.has_credentials():
            return "rest", f"Mona credentials found (AUTH_MODE={self.auth_mode})"
        return "file", "no Mona credentials are set, so messages are kept in a local file"

    def masked(self) -> dict[str, Any]:
        """The settings as a dict with secrets masked, safe to print or log."""
        shown = {}
        for name in _OPTIONS:
            value = getattr(self, name)
            if name in SECRET_OPTIONS and value:
                value = f"{value[:2]}***" if len(value) > 8 else "***"
            elif isinstance(value, Mapping):
                value = dict(value)
            elif not isinstance(value, (str, int, float, bool, type(None))):
                value = type(value).__name__
            shown[name] = value
        return shown


def env_var(option: str) -> str | None:
    """The environment variable that sets ``option``."""
    return _OPTIONS[option][0]


def _resolve_one(name, var, parse, default, options, env, strict) -> Any:
    if name in options and options[name] is not None:
        source, raw = f"option {name}", options[name]
    elif var and env.get(var, "").strip():
        source, raw = f"environment variable {var}", env[var]
    else:
        return default
    try:
        return parse(raw)
    except (ValueError, TypeError) as exc:
        shown = "***" if name in SECRET_OPTIONS else repr(raw)
        message = f"invalid {source}={shown}: {exc}"
        if strict:
            raise MonaConfigError(message) from None
        from ._log import logger

        logger.error("mona_middleware: %s; using the default %r", message, default)
        return default


def _resolve_bool_quiet(value: str, default: bool) -> bool:
    try:
        return _bool(value)
    except ValueError:
        return default
