"""One frozen configuration, resolved once: explicit options, then environment, then defaults.

The environment is the one a Mona user already has for ``mona_sdk`` (``MONA_SDK_*``,
``AUTH_MODE``, ``MONA_DISABLE_ALL``); knobs of our own are ``MONA_MIDDLEWARE_*``. Every
option is declared once, as a ``MonaConfig`` field carrying its variable and parser, so
the option list, the env names, the validation and ``mona-middleware check`` cannot drift.
"""

from __future__ import annotations

import dataclasses
import json
import logging
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


_SDK_BOOLEANS = {"True": True, "true": True, "False": False, "false": False}


def _sdk_bool(default: bool) -> Callable[[Any], bool]:
    """A ``MONA_SDK_*`` variable read as mona_sdk's ``get_boolean_value_for_env_var`` does.

    mona_sdk knows only these four spellings and silently keeps its default for anything
    else, so ``MONA_SDK_SHOULD_USE_SSL=0`` means https there: we refuse it rather than
    read it the other way.
    """

    def parse(value: Any) -> bool:
        if value in _SDK_BOOLEANS:
            return _SDK_BOOLEANS[value]
        raise ValueError(
            "mona_sdk reads only true/false (True/true/False/false) and would keep its"
            f" default ({str(default).lower()})"
        )

    return parse


def _disable_all_env(value: str) -> bool:
    """``MONA_DISABLE_ALL``, as mona-client read it: any truthy value switches all off.

    mona_sdk does not read it. A kill switch fails safe: only an explicit "off"
    (empty, false, 0, no, off) leaves monitoring on; anything else turns it off.
    """
    return value.strip().lower() not in ("", "false", "0", "no", "off")


def _auth_mode_env(value: str) -> str:
    """``AUTH_MODE`` exactly as mona_sdk looks it up: case-sensitive, no spaces."""
    if value in AUTH_MODES:
        return value
    if value == "OIDC":
        raise ValueError("mona_middleware does not support OIDC; use MONA, NO_AUTH or MANUAL_TOKEN")
    raise ValueError(
        "mona_sdk accepts only MONA, OIDC, MANUAL_TOKEN or NO_AUTH, in exactly that case,"
        " and cannot create its client with any other (unless a token is set or"
        " MONA_SDK_SHOULD_USE_AUTHENTICATION=false)"
    )


def _sdk_auth_choice(use_authentication: bool, access_token: Any, auth_mode: str) -> str:
    """The mode mona_sdk's authenticator factory (``_get_cls``) picks, in its order."""
    if not use_authentication:
        return "NO_AUTH"
    if access_token:
        return "MANUAL_TOKEN"
    return auth_mode


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


def _rates(value: Any) -> Mapping[str, float]:
    """Per-class sampling rates: a dict or mona_sdk's JSON object ``{"class": rate}``."""
    parsed = json.loads(value) if isinstance(value, str) else dict(value)
    if not isinstance(parsed, dict):
        raise ValueError("must be a JSON object of context class -> rate")
    return MappingProxyType({str(k): _number(float, 0, 1)(v) for k, v in parsed.items()})


def _callable(value: Any) -> Any:
    if not callable(value):
        raise ValueError(f"must be callable, got {type(value).__name__}")
    return value


def _megabytes(value: Any) -> int:
    return int(_number(float, 0, 1_000_000)(value) * 1024 * 1024)


def _log_level(value: Any) -> int:
    level = value if isinstance(value, int) else logging.getLevelName(str(value).strip().upper())
    if not isinstance(level, int):
        raise ValueError(f"expected a logging level name or number, got {value!r}")
    return level


def _opt(
    default: Any,
    env: str | None,
    parse: Callable[[Any], Any],
    *,
    env_parse: Callable[[str], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """A config field that knows its environment variable and parser.

    ``env_parse``, when given, reads the variable instead of ``parse``: a Mona variable
    must mean what it means to mona_sdk, while an argument may be ``True`` or ``"yes"``.
    """
    if isinstance(default, Mapping):
        kwargs["default_factory"] = lambda: MappingProxyType(dict(default))
    else:
        kwargs["default"] = default
    metadata = {"env": env, "parse": parse, "env_parse": env_parse or parse}
    return field(metadata=metadata, **kwargs)


def _sdk_flag(default: bool, env: str) -> Any:
    return _opt(default, env, _bool, env_parse=_sdk_bool(default))


@dataclass(frozen=True)
class MonaConfig:
    """The resolved settings; build it with ``configure()`` or ``MonaConfig.resolve()``.

    >>> MonaConfig.resolve({"transport": "memory"}, env={}).batch_size
    500
    """

    # Mona's own settings, read as mona_sdk reads them
    api_key: str | None = _opt(None, "MONA_SDK_API_KEY", _text, repr=False)
    secret: str | None = _opt(None, "MONA_SDK_SECRET", _text, repr=False)
    user_id: str | None = _opt(None, "MONA_SDK_USER_ID", _text)
    access_token: str | None = _opt(None, "MONA_SDK_ACCESS_TOKEN", _text, repr=False)
    auth_mode: str = _opt(
        "MONA", "AUTH_MODE", _choice(AUTH_MODES, upper=True), env_parse=_auth_mode_env
    )
    auth_api_token_url: str = _opt(DEFAULT_TOKEN_URL, "MONA_SDK_AUTH_API_TOKEN_URL", _url)
    refresh_token_url: str = _opt(DEFAULT_REFRESH_URL, "MONA_SDK_REFRESH_TOKEN_URL", _url)
    use_refresh_tokens: bool = _sdk_flag(True, "MONA_SDK_USE_REFRESH_TOKENS")
    auth_retries: int = _opt(3, "MONA_SDK_NUM_OF_RETRIES_FOR_AUTHENTICATION", _number(int, 0, 20))
    auth_retry_wait: float = _opt(
        2.0, "MONA_SDK_WAIT_TIME_FOR_AUTHENTICATION_RETRIES_SEC", _number(float, 0, 60)
    )
    rest_api_host: str | None = _opt(None, "MONA_SDK_OVERRIDE_REST_API_HOST", _text)
    rest_api_url: str | None = _opt(None, "MONA_SDK_OVERRIDE_REST_API_URL", _url)
    use_ssl: bool = _sdk_flag(True, "MONA_SDK_SHOULD_USE_SSL")
    filter_none_fields: bool = _sdk_flag(False, "MONA_SDK_FILTER_NONE_FIELDS_ON_EXPORT")
    raise_export_exceptions: bool = _sdk_flag(False, "MONA_SDK_RAISE_EXPORT_EXCEPTIONS")
    disable_all: bool = _opt(False, "MONA_DISABLE_ALL", _bool, env_parse=_disable_all_env)
    sampling_rate: float = _opt(1.0, "MONA_SDK_DEFAULT_SAMPLING_FACTOR", _number(float, 0, 1))
    sampling_rates: Mapping[str, float] = _opt({}, "MONA_SDK_SAMPLING_CONFIG", _rates)
    log_level: int | None = _opt(None, "MONA_SDK_LOGGING_LEVEL", _log_level)
    logger_name: str = _opt("mona_middleware", "MONA_SDK_LOGGER_NAME", _text)
    # the exporter
    transport: Any = _opt("auto", "MONA_MIDDLEWARE_TRANSPORT", _transport)
    file_path: str = _opt(DEFAULT_FILE_PATH, "MONA_MIDDLEWARE_FILE_PATH", _text)
    queue_size: int = _opt(10_000, "MONA_MIDDLEWARE_QUEUE_SIZE", _number(int, 1, 10_000_000))
    batch_size: int = _opt(500, "MONA_MIDDLEWARE_BATCH_SIZE", _number(int, 1, 10_000))
    flush_interval: float = _opt(1.0, "MONA_MIDDLEWARE_FLUSH_INTERVAL", _number(float, 0.001, 3600))
    sender_threads: int = _opt(2, "MONA_MIDDLEWARE_SENDER_THREADS", _number(int, 1, 32))
    http_timeout: float = _opt(10.0, "MONA_MIDDLEWARE_HTTP_TIMEOUT", _number(float, 0.01, 600))
    shutdown_timeout: float = _opt(5.0, "MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT", _number(float, 0, 600))
    global_fields: Mapping[str, Any] = _opt({}, "MONA_MIDDLEWARE_GLOBAL_FIELDS", _fields)
    gzip: bool = _opt(False, "MONA_MIDDLEWARE_GZIP", _bool)
    # reliability
    max_retries: int = _opt(8, "MONA_MIDDLEWARE_MAX_RETRIES", _number(int, 0, 1000))
    retry_max_time: float = _opt(120.0, "MONA_MIDDLEWARE_RETRY_MAX_TIME", _number(float, 0, 86400))
    retry_backoff: float = _opt(0.5, "MONA_MIDDLEWARE_RETRY_BACKOFF", _number(float, 0.001, 60))
    retry_max_backoff: float = _opt(
        30.0, "MONA_MIDDLEWARE_RETRY_MAX_BACKOFF", _number(float, 0.001, 3600)
    )
    retry_after_cap: float = _opt(120.0, "MONA_MIDDLEWARE_RETRY_AFTER_CAP", _number(float, 0, 3600))
    spool: bool = _opt(True, "MONA_MIDDLEWARE_SPOOL", _bool)
    spool_dir: str | None = _opt(None, "MONA_MIDDLEWARE_SPOOL_DIR", _text)
    spool_max_bytes: int = _opt(100 * 1024 * 1024, "MONA_MIDDLEWARE_SPOOL_MAX_MB", _megabytes)
    config_file: str | None = _opt(None, "MONA_MIDDLEWARE_CONFIG_FILE", _text)
    config_poll_interval: float = _opt(
        1.0, "MONA_MIDDLEWARE_CONFIG_POLL_INTERVAL", _number(float, 0.01, 3600)
    )
    error_handler: Any = _opt(None, None, _callable)
    self_metrics_interval: float = _opt(
        0.0, "MONA_MIDDLEWARE_SELF_METRICS_INTERVAL", _number(float, 0, 86400)
    )
    self_metrics_class: str = _opt(
        "MONA_MIDDLEWARE_SELF_METRICS", "MONA_MIDDLEWARE_SELF_METRICS_CLASS", _text
    )

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
        unknown = sorted(set(options) - set(OPTION_NAMES))
        if unknown:
            raise MonaConfigError(f"unknown mona_middleware option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            if spec.name == "auth_mode":
                continue  # its default depends on the others, as in mona_sdk
            if spec.name in options or _env_value(spec, env) is not None:
                values[spec.name] = _resolve_one(spec, options, env, strict)
        values["auth_mode"] = _resolve_auth_mode(values, options, env, strict)
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
        for name in OPTION_NAMES:
            value = getattr(self, name)
            if name in SECRET_OPTIONS and value:
                value = f"{value[:2]}***" if len(value) > 8 else "***"
            elif isinstance(value, Mapping):
                value = dict(value)
            elif not isinstance(value, (str, int, float, bool, type(None))):
                value = type(value).__name__
            shown[name] = value
        return shown


def _default(spec: dataclasses.Field) -> Any:
    return spec.default_factory() if spec.default is dataclasses.MISSING else spec.default


def _env_value(spec: dataclasses.Field, env: Mapping[str, str]) -> str | None:
    var = spec.metadata["env"]
    value = env.get(var, "") if var else ""
    return value if value.strip() else None


def _resolve_one(
    spec: dataclasses.Field,
    options: Mapping,
    env: Mapping,
    strict: bool,
    default: Any = dataclasses.MISSING,
) -> Any:
    name, var = spec.name, spec.metadata["env"]
    if default is dataclasses.MISSING:
        default = _default(spec)
    if name in options and options[name] is not None:
        source, raw, parse = f"option {name}", options[name], spec.metadata["parse"]
    elif _env_value(spec, env) is not None:
        source, raw, parse = f"environment variable {var}", env[var], spec.metadata["env_parse"]
    else:
        return default
    try:
        return parse(raw)
    except (ValueError, TypeError) as exc:
        shown = "***" if name in SECRET_OPTIONS else repr(raw)
        return _invalid(f"invalid {source}={shown}: {exc}", default, strict)


def _invalid(message: str, default: Any, strict: bool) -> Any:
    """Raise (``strict``) or log ``message`` and fall back to ``default``."""
    if strict:
        raise MonaConfigError(message) from None
    from ._log import logger

    logger.error("mona_middleware: %s; using the default %r", message, default)
    return default


def _resolve_auth_mode(values: Mapping, options: Mapping, env: Mapping, strict: bool) -> str:
    """``auth_mode``/``AUTH_MODE`` when given, else the mode mona_sdk would pick.

    mona_sdk uses no authentication when ``MONA_SDK_SHOULD_USE_AUTHENTICATION`` is false,
    else a manual token whenever one is set, else ``AUTH_MODE``. An explicit mode wins
    here, but a disagreement with mona_sdk is logged: the same environment would then
    authenticate differently there.
    """
    raw = env.get(_USE_AUTHENTICATION, "")
    use_authentication = True
    if raw.strip():
        try:
            use_authentication = _sdk_bool(True)(raw)
        except ValueError as exc:
            message = f"invalid environment variable {_USE_AUTHENTICATION}={raw!r}: {exc}"
            use_authentication = _invalid(message, True, strict)
    token = values.get("access_token")
    default = _sdk_auth_choice(use_authentication, token, "MONA")
    mode = _resolve_one(_SPECS["auth_mode"], options, env, strict, default)
    sdk_mode = _sdk_auth_choice(use_authentication, token, mode)
    if sdk_mode != mode:
        from ._log import logger

        why = "an access token is set" if use_authentication else f"{_USE_AUTHENTICATION}=false"
        logger.warning(
            "mona_middleware: using the auth mode %s as configured; mona_sdk would use %s (%s)",
            mode,
            sdk_mode,
            why,
        )
    return mode


_USE_AUTHENTICATION = "MONA_SDK_SHOULD_USE_AUTHENTICATION"
_SPECS = {spec.name: spec for spec in dataclasses.fields(MonaConfig)}
OPTION_NAMES = tuple(_SPECS)


def env_var(option: str) -> str | None:
    """The environment variable that sets ``option``."""
    return _SPECS[option].metadata["env"]
