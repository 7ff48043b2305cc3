"""One frozen configuration of the exporter, resolved once: explicit options, then the
framework's config, then the environment, then defaults.

The environment is the one a Mona user already has for ``mona_sdk`` (``MONA_SDK_*``,
``AUTH_MODE``, ``MONA_DISABLE_ALL``); knobs of our own are ``MONA_MIDDLEWARE_*``. Every
option is declared once, as a ``MonaConfig`` field made by ``option()`` (its variable,
parser and documentation), so the option list, the env names, the validation, the
README's table and ``mona-middleware check`` cannot drift.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._util.log import logger
from ._util.options import (
    Problem,
    Spec,
    boolean,
    callable_value,
    choice,
    env_value,
    invalid,
    log_level,
    megabytes,
    number,
    option,
    resolve,
    shown_value,
    specs,
    text,
    unknown_options,
    url,
)
from .errors import MonaConfigError

__all__ = [
    "DEFAULT_FILE_PATH",
    "DEFAULT_REFRESH_URL",
    "DEFAULT_TOKEN_URL",
    "FALLBACK_VARIABLES",
    "NOT_APPLYING",
    "MonaConfig",
    "env_var",
    "not_applying",
    "with_fallbacks",
]

AUTH_MODES = ("MONA", "NO_AUTH", "MANUAL_TOKEN")
TRANSPORTS = ("auto", "rest", "file", "memory")
DEFAULT_TOKEN_URL = "https://monalabs.frontegg.com/identity/resources/auth/v1/api-token"
DEFAULT_REFRESH_URL = DEFAULT_TOKEN_URL + "/token/refresh"
DEFAULT_FILE_PATH = "mona-messages.jsonl"
_USE_AUTHENTICATION = "MONA_SDK_SHOULD_USE_AUTHENTICATION"
# The user's ``error_handler(result)``, once per batch that did not land whole: ``result``
# is a dict (``status``, ``total``, ``sent``, ``failed``, ``errors``, ``retries``,
# ``retryable``); what it returns is ignored.
ErrorHandler = Callable[[dict[str, Any]], object]


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
            "is not true or false as mona_sdk reads it (only True, true, False or false;"
            f" mona_sdk would keep its default, {str(default).lower()})"
        )

    return parse


def _disable_all_env(value: str) -> bool:
    """``MONA_DISABLE_ALL``, as mona-client read it: any truthy value switches all off.

    mona_sdk does not read it. A kill switch fails safe: only an explicit "off"
    (empty, false, 0, no, off) leaves monitoring on; anything else turns it off.
    """
    return value.strip().lower() not in ("", "false", "0", "no", "off")


def _truthy_env(value: str) -> bool:
    """``MONA_PRINT_LOGS`` as mona-client read it: any non-empty value is on."""
    return bool(value.strip())


def _auth_mode_env(value: str) -> str:
    """``AUTH_MODE`` exactly as mona_sdk looks it up: case-sensitive, no spaces."""
    if value in AUTH_MODES:
        return value
    if value == "OIDC":
        raise ValueError("is not supported by mona_middleware: use MONA, NO_AUTH or MANUAL_TOKEN")
    raise ValueError(
        "is not MONA, NO_AUTH or MANUAL_TOKEN (mona_sdk takes exactly these, in capitals,"
        " and cannot create its client with any other unless a token is set or"
        " MONA_SDK_SHOULD_USE_AUTHENTICATION=false)"
    )


def _sdk_auth_choice(use_authentication: bool, access_token: Any, auth_mode: str) -> str:
    """The mode mona_sdk's authenticator factory (``_get_cls``) picks, in its order."""
    if not use_authentication:
        return "NO_AUTH"
    if access_token:
        return "MANUAL_TOKEN"
    return auth_mode


def _transport(value: Any) -> Any:
    if callable(getattr(value, "send", None)) and callable(getattr(value, "close", None)):
        return value  # a Transport instance, e.g. InMemoryTransport() in tests
    return choice(TRANSPORTS, upper=False)(value)


def _fields(value: Any) -> Mapping[str, Any]:
    """A dict, a JSON object, or ``"k: v, k2: v2"`` as apptuit's global tags were."""
    if isinstance(value, Mapping):
        parsed = dict(value)
    elif str(value).strip().startswith("{"):
        parsed = _json(value)
        if not isinstance(parsed, dict):
            raise ValueError("is not a JSON object")
    else:
        parsed = {}
        for pair in filter(None, (p.strip() for p in str(value).split(","))):
            key, sep, val = pair.partition(":")
            if not sep or not key.strip():
                raise ValueError(f"is not JSON or 'key: value' pairs ({pair!r} has no key)")
            parsed[key.strip()] = val.strip()
    if not all(isinstance(key, str) for key in parsed):
        raise ValueError("has field names that are not strings")
    return MappingProxyType(parsed)


def _rates(value: Any) -> Mapping[str, float]:
    """Per-class sampling rates: a dict or mona_sdk's JSON object ``{"class": rate}``."""
    parsed = _json(value) if isinstance(value, str) else dict(value)
    if not isinstance(parsed, dict):
        raise ValueError('is not a JSON object of context class -> rate ({"CLASS": 0.5})')
    rates = {}
    for name, rate in parsed.items():
        try:
            rates[str(name)] = number(float, 0, 1)(rate)
        except ValueError:
            raise ValueError(f"has a rate for {name!r} that is not a number from 0 to 1") from None
    return MappingProxyType(rates)


def _json(value: Any) -> Any:
    """JSON text, with a reason in words when it is not."""
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg} at character {exc.pos})") from None


def _sdk_flag(default: bool, env: str, doc: str) -> Any:
    return option(default, env, boolean, env_parse=_sdk_bool(default), doc=doc)


@dataclass(frozen=True)
class MonaConfig:
    """The resolved settings; build it with ``configure()`` or ``MonaConfig.resolve()``.

    >>> MonaConfig.resolve({"transport": "memory"}, env={}).batch_size
    500
    """

    # Mona's own settings, read as mona_sdk reads them
    api_key: str | None = option(None, "MONA_SDK_API_KEY", text, secret=True, doc="Mona API key")
    secret: str | None = option(None, "MONA_SDK_SECRET", text, secret=True, doc="Mona secret")
    user_id: str | None = option(
        None, "MONA_SDK_USER_ID", text, shown_default="from the token's `tenantId`",
        doc="the Mona user id (the `incoming<user id>` host)",
    )  # fmt: skip
    access_token: str | None = option(
        None, "MONA_SDK_ACCESS_TOKEN", text, secret=True, doc="a token for `MANUAL_TOKEN`"
    )
    auth_mode: str = option(
        "MONA", "AUTH_MODE", choice(AUTH_MODES, upper=True), env_parse=_auth_mode_env,
        shown_default="as mona_sdk picks it: `NO_AUTH` when `MONA_SDK_SHOULD_USE_AUTHENTICATION"
        "=false`, `MANUAL_TOKEN` when a token is set, else `MONA`",
        doc="`MONA`, `NO_AUTH` or `MANUAL_TOKEN`",
    )  # fmt: skip
    auth_api_token_url: str = option(
        DEFAULT_TOKEN_URL, "MONA_SDK_AUTH_API_TOKEN_URL", url, shown_default="Mona's",
        doc="where tokens come from",
    )  # fmt: skip
    refresh_token_url: str = option(
        DEFAULT_REFRESH_URL, "MONA_SDK_REFRESH_TOKEN_URL", url, shown_default="Mona's",
        doc="where tokens are refreshed",
    )  # fmt: skip
    use_refresh_tokens: bool = _sdk_flag(
        True, "MONA_SDK_USE_REFRESH_TOKENS", "refresh a token before asking for a new one"
    )
    auth_retries: int = option(
        3, "MONA_SDK_NUM_OF_RETRIES_FOR_AUTHENTICATION", number(int, 0, 20),
        doc="token requests retried this many times",
    )  # fmt: skip
    auth_retry_wait: float = option(
        2.0, "MONA_SDK_WAIT_TIME_FOR_AUTHENTICATION_RETRIES_SEC", number(float, 0, 60),
        shown_default="2 s", doc="seconds between token retries",
    )  # fmt: skip
    rest_api_host: str | None = option(
        None, "MONA_SDK_OVERRIDE_REST_API_HOST", text,
        shown_default="`incoming<user id>.monalabs.io`", doc="the export host",
    )  # fmt: skip
    rest_api_url: str | None = option(
        None, "MONA_SDK_OVERRIDE_REST_API_URL", url, doc="the whole export URL"
    )
    use_ssl: bool = _sdk_flag(True, "MONA_SDK_SHOULD_USE_SSL", "`false`: http instead of https")
    filter_none_fields: bool = _sdk_flag(
        False, "MONA_SDK_FILTER_NONE_FIELDS_ON_EXPORT", "leave out fields whose value is None"
    )
    raise_export_exceptions: bool = _sdk_flag(
        False, "MONA_SDK_RAISE_EXPORT_EXCEPTIONS", "bad calls raise `MonaExportError`"
    )
    raise_authentication_exceptions: bool = _sdk_flag(
        False, "MONA_SDK_RAISE_AUTHENTICATION_EXCEPTIONS",
        "`compat.mona_sdk.Client()` asks for a token at once and raises when refused",
    )  # fmt: skip
    raise_service_exceptions: bool = _sdk_flag(
        False, "MONA_SDK_RAISE_SERVICE_EXCEPTIONS",
        "`compat.mona_sdk`'s services methods raise instead of returning the error",
    )  # fmt: skip
    log_failed_messages: bool = _sdk_flag(
        False, "MONA_SDK_SHOULD_LOG_FAILED_MESSAGES",
        "log each message Mona refused, or that was lost, at ERROR (their fields included)",
    )  # fmt: skip
    disable_all: bool = option(
        False, "MONA_DISABLE_ALL", boolean, env_parse=_disable_all_env,
        doc="switch everything off (any value but an explicit off)",
    )  # fmt: skip
    sampling_rate: float = option(
        1.0, "MONA_SDK_DEFAULT_SAMPLING_FACTOR", number(float, 0, 1), shown_default="1",
        doc="the share of contexts kept",
    )  # fmt: skip
    sampling_rates: Mapping[str, float] = option(
        {}, "MONA_SDK_SAMPLING_CONFIG", _rates, doc='per class: `{"class": rate}`'
    )
    log_level: int | None = option(
        None, "MONA_SDK_LOGGING_LEVEL", log_level, shown_default="unchanged",
        doc="the package logger's level (a name or a number)",
    )  # fmt: skip
    logger_name: str = option(
        "mona_middleware", "MONA_SDK_LOGGER_NAME", text, doc="the package logger's name"
    )
    print_logs: bool = option(
        False, "MONA_PRINT_LOGS", boolean, env_parse=_truthy_env,
        doc="also print the package's log lines to stdout (mona-client's variable)",
    )  # fmt: skip
    # the exporter
    transport: Any = option(
        "auto", "MONA_MIDDLEWARE_TRANSPORT", _transport,
        doc="`auto`, `rest`, `file`, `memory` (or a transport object)",
    )  # fmt: skip
    file_path: str = option(
        DEFAULT_FILE_PATH, "MONA_MIDDLEWARE_FILE_PATH", text,
        shown_default="`./mona-messages.jsonl`", doc="the file transport's JSONL file",
    )  # fmt: skip
    queue_size: int = option(
        10_000, "MONA_MIDDLEWARE_QUEUE_SIZE", number(int, 1, 10_000_000),
        shown_default="10000 contexts", doc="closed contexts waiting for the exporter",
    )  # fmt: skip
    request_queue_wait: float = option(
        0.005, "MONA_MIDDLEWARE_REQUEST_QUEUE_WAIT", number(float, 0, 60), shown_default="5 ms",
        doc="with the queue full, a web request waits this long for room, then drops "
        "(code outside requests waits until there is room)",
    )  # fmt: skip
    batch_size: int = option(
        500, "MONA_MIDDLEWARE_BATCH_SIZE", number(int, 1, 10_000),
        shown_default="500 messages per POST", doc="messages per request to Mona",
    )  # fmt: skip
    flush_interval: float = option(
        1.0, "MONA_MIDDLEWARE_FLUSH_INTERVAL", number(float, 0.001, 3600), shown_default="1 s",
        doc="a partial batch waits at most this long",
    )  # fmt: skip
    sender_threads: int = option(
        2, "MONA_MIDDLEWARE_SENDER_THREADS", number(int, 1, 32), doc="threads that POST"
    )
    # Long on purpose: a POST that times out is retried, and a backend that stored it
    # meanwhile then stores it twice unless it honours the batch's Idempotency-Key.
    http_timeout: float = option(
        30.0, "MONA_MIDDLEWARE_HTTP_TIMEOUT", number(float, 0.01, 600), shown_default="30 s",
        doc="per POST; longer than Mona takes on a bad day, so a slow answer is not sent again "
        "(see Reliability)",
    )  # fmt: skip
    max_message_bytes: int = option(
        1024 * 1024, "MONA_MIDDLEWARE_MAX_MESSAGE_BYTES", number(int, 1024, 2**31),
        shown_default="1 MB",
        doc="a message larger than this, JSON-encoded, loses its largest fields (each logged by "
        "name, counted in `fields_dropped`) until it fits",
    )  # fmt: skip
    shutdown_timeout: float = option(
        5.0, "MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT", number(float, 0, 600), shown_default="5 s",
        doc="how long a shutdown may take to flush",
    )  # fmt: skip
    global_fields: Mapping[str, Any] = option(
        {}, "MONA_MIDDLEWARE_GLOBAL_FIELDS", _fields,
        doc="fields for every context (JSON or `k: v, k2: v2`)",
    )  # fmt: skip
    gzip: bool = option(False, "MONA_MIDDLEWARE_GZIP", boolean, doc="gzip each POST")
    # reliability
    max_retries: int = option(
        8, "MONA_MIDDLEWARE_MAX_RETRIES", number(int, 0, 1000), doc="retries per batch"
    )
    retry_max_time: float = option(
        120.0, "MONA_MIDDLEWARE_RETRY_MAX_TIME", number(float, 0, 86400), shown_default="120 s",
        doc="a batch is retried for at most this long",
    )  # fmt: skip
    retry_backoff: float = option(
        0.5, "MONA_MIDDLEWARE_RETRY_BACKOFF", number(float, 0.001, 60), shown_default="0.5 s",
        doc="the first backoff, doubling, with full jitter",
    )  # fmt: skip
    retry_max_backoff: float = option(
        30.0, "MONA_MIDDLEWARE_RETRY_MAX_BACKOFF", number(float, 0.001, 3600),
        shown_default="30 s", doc="the longest backoff",
    )  # fmt: skip
    retry_after_cap: float = option(
        120.0, "MONA_MIDDLEWARE_RETRY_AFTER_CAP", number(float, 0, 3600), shown_default="120 s",
        doc="the longest `Retry-After` honoured",
    )  # fmt: skip
    spool: bool = option(True, "MONA_MIDDLEWARE_SPOOL", boolean, doc="keep unsent batches on disk")
    spool_dir: str | None = option(
        None, "MONA_MIDDLEWARE_SPOOL_DIR", text,
        shown_default="`~/.cache/mona_middleware/spool/<backend>`", doc="the spool's directory",
    )  # fmt: skip
    spool_max_bytes: int = option(
        100 * 1024 * 1024, "MONA_MIDDLEWARE_SPOOL_MAX_MB", megabytes, shown_default="100 MB",
        doc="the spool's cap (the variable is in MB)",
    )  # fmt: skip
    config_file: str | None = option(
        None, "MONA_MIDDLEWARE_CONFIG_FILE", text,
        doc='a JSON file re-read while running: `{"disable_all": true}` switches off',
    )  # fmt: skip
    config_poll_interval: float = option(
        1.0, "MONA_MIDDLEWARE_CONFIG_POLL_INTERVAL", number(float, 0.01, 3600),
        shown_default="1 s", doc="how often the config file is read",
    )  # fmt: skip
    error_handler: ErrorHandler | None = option(
        None, None, callable_value,
        doc="`error_handler(result)` per failed batch, with `status`, `sent`, `failed`, "
        "`errors`, `retries`",
    )  # fmt: skip
    self_metrics_interval: float = option(
        0.0, "MONA_MIDDLEWARE_SELF_METRICS_INTERVAL", number(float, 0, 86400),
        shown_default="off", doc="seconds between the exporter's reports on itself",
    )  # fmt: skip
    self_metrics_class: str = option(
        "MONA_MIDDLEWARE_SELF_METRICS", "MONA_MIDDLEWARE_SELF_METRICS_CLASS", text,
        doc="their context class",
    )  # fmt: skip
    # Derived once, when the configuration is made, and read where a context opens (an
    # attribute read, not an expression per request). Not options: never set by hand.
    samples: bool = dataclasses.field(init=False, repr=False, compare=False)
    """Sampling is active: some context may be left out (a rate below 1, by default or
    for a class)."""

    def __post_init__(self) -> None:
        samples = self.sampling_rate < 1 or bool(self.sampling_rates)
        object.__setattr__(self, "samples", samples)  # frozen: set once, here

    @classmethod
    def resolve(
        cls,
        options: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        strict: bool = True,
    ) -> MonaConfig:
        """Resolve options over ``env`` over defaults.

        With ``strict`` an invalid value raises ``MonaConfigError`` naming every one;
        without (the lazy, implicit configuration) each is logged and its default used
        instead, so a typo in one variable cannot stop the rest of the data. An unknown
        option name always raises: it is a typo in code.
        """
        config, problems = cls.examine(options, env)
        errors = [problem for problem in problems if not problem.note]
        if strict and errors:
            raise MonaConfigError("; ".join(problem.error() for problem in errors))
        for problem in problems:
            if problem.note:
                logger.warning("mona_middleware: %s", problem)
            elif not strict:
                logger.error("mona_middleware: %s", problem)
        return config

    @classmethod
    def examine(
        cls, options: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[MonaConfig, list[Problem]]:
        """The configuration the lazy path runs with, and every problem met on the way.

        The one place values are judged: ``resolve()`` raises or logs these problems and
        ``mona-middleware check`` prints them, so both reach the same verdict. A problem
        with ``instead`` was replaced (by the default shown); a ``fatal`` one keeps the
        data from Mona.
        """
        options = dict(options or {})
        env = with_fallbacks(os.environ if env is None else env)
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise MonaConfigError(unknown_options(unknown, OPTIONS))
        layers: list[tuple[str, Mapping[str, Any]]] = [("option", options)]
        problems: list[Problem] = []
        values: dict[str, Any] = {}
        for name, spec in OPTIONS.items():
            if name == "auth_mode":
                continue  # its default depends on the others, as in mona_sdk
            if name in options or env_value(spec, env) is not None:
                values[name] = resolve(spec, layers, env, False, problems=problems)
        values["auth_mode"] = _resolve_auth_mode(values, options, env, problems)
        config = cls(**values)
        problem = config.credentials_problem()
        if problem and (config.transport == "rest" or config.has_credentials()):
            path = os.path.abspath(os.path.expanduser(config.file_path))
            instead = f"the local file {path} instead of Mona"
            problems.append(Problem(problem, "", instead, fatal=True))
            config = dataclasses.replace(config, transport="file")
        return config, problems

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
        for name, spec in OPTIONS.items():
            value = getattr(self, name)
            if spec.secret and value:
                value = f"{value[:2]}***" if len(value) > 8 else "***"
            elif isinstance(value, Mapping):
                value = dict(value)
            elif not isinstance(value, (str, int, float, bool, type(None))):
                value = type(value).__name__
            shown[name] = value
        return shown


def _resolve_auth_mode(
    values: Mapping[str, Any],
    options: Mapping[str, Any],
    env: Mapping[str, str],
    problems: list[Problem],
) -> str:
    """``auth_mode``/``AUTH_MODE`` when given, else the mode mona_sdk would pick.

    mona_sdk uses no authentication when ``MONA_SDK_SHOULD_USE_AUTHENTICATION`` is false,
    else a manual token whenever one is set, else ``AUTH_MODE``. An explicit mode wins
    here, but a disagreement with mona_sdk is noted: the same environment would then
    authenticate differently there.
    """
    raw = env.get(_USE_AUTHENTICATION, "")
    use_authentication = True
    if raw.strip():
        try:
            use_authentication = _sdk_bool(True)(raw)
        except ValueError as exc:
            subject = f"{_USE_AUTHENTICATION}={shown_value(raw)}"
            use_authentication = invalid(Problem(subject, str(exc), "true"), True, False, problems)
    token = values.get("access_token")
    default = _sdk_auth_choice(use_authentication, token, "MONA")
    mode: str = resolve(OPTIONS["auth_mode"], [("option", options)], env, False, default, problems)
    sdk_mode = _sdk_auth_choice(use_authentication, token, mode)
    if sdk_mode != mode:
        why = "an access token is set" if use_authentication else f"{_USE_AUTHENTICATION}=false"
        reason = f"is used as configured, where mona_sdk would use {sdk_mode} ({why})"
        problems.append(Problem(f"the auth mode {mode}", reason))
    return mode


OPTIONS: dict[str, Spec] = specs(MonaConfig)
OPTION_NAMES = tuple(OPTIONS)
SECRET_OPTIONS = frozenset(name for name, spec in OPTIONS.items() if spec.secret)
# Read by resolve() itself, not declared as an option of its own.
OTHER_VARIABLES = frozenset({_USE_AUTHENTICATION})


# Variables of mona_sdk and mona-client that set one of our options when its own
# variable is not set: (fallback, the variable it stands in for). Same meaning in both.
FALLBACK_VARIABLES: dict[str, str] = {
    "MONA_USER_ID": "MONA_SDK_USER_ID",  # mona-client
    "MONA_LOGGER_NAME": "MONA_SDK_LOGGER_NAME",  # mona_sdk's older prefix
    "MONA_LOGGING_LEVEL": "MONA_SDK_LOGGING_LEVEL",  # mona_sdk's older prefix, mona-client
    "MONA_CLIENT_CONFIG_FILE": "MONA_MIDDLEWARE_CONFIG_FILE",  # mona-client's Big Red Button
    "MONA_SHOULD_RAISE_EXCEPTIONS": "MONA_SDK_RAISE_EXPORT_EXCEPTIONS",  # mona-client
}
_SERVICES = "mona_sdk's services API is not part of mona_middleware: keep mona_sdk for it"
_REST = (
    "mona_middleware speaks Mona's REST API, not mona-client's fluentd protocol: set "
    "MONA_SDK_API_KEY and MONA_SDK_SECRET (the host is then incoming<user id>.monalabs.io), "
    "or MONA_SDK_OVERRIDE_REST_API_URL"
)
# Variables of mona_sdk and mona-client with no meaning here, and what to set instead.
NOT_APPLYING: dict[str, str] = {
    "MONA_HOST": _REST,
    "MONA_PORT": _REST,
    "MONA_QUEUE_SIZE": "set MONA_MIDDLEWARE_QUEUE_SIZE (it counts closed contexts)",
    "MONA_QUEUE_CIRCULAR": "the queue never blocks: what a full queue drops is counted "
    "in stats()['dropped']; set MONA_MIDDLEWARE_QUEUE_SIZE to size it",
    "MONA_BLOCKING": "exports never block the app; call flush() to wait for delivery",
    "MONA_SDK_USE_SEND_EVENT_ENDPOINT": "batches go to /export (/monaExport with NO_AUTH); "
    "set MONA_SDK_OVERRIDE_REST_API_URL to post elsewhere",
    "MONA_SDK_USE_SEND_TIMESTAMP_FIELD": "the timestamp goes in exportTimestamp (sendTimestamp "
    "null), as mona_sdk 0.0.58 sends it by default; nothing to set",
    "MONA_SDK_ENABLE_DEPRECATION_WARNINGS_ON_EXPORT_TIMESTAMP": "exportTimestamp and "
    "sendTimestamp are both accepted without a warning; nothing to set",
    "MONA_SDK_OVERRIDE_APP_SERVER_HOST": _SERVICES,
    "MONA_SDK_OVERRIDE_APP_SERVER_URL": _SERVICES,
    "MONA_SDK_REFRESH_TOKEN_SAFETY_MARGIN": "tokens are refreshed 30 minutes (at most half "
    "their lifetime) before they expire; nothing to set",
    "MONA_SDK_OIDC_CLIENT_ID": "OIDC is not supported: use AUTH_MODE=MONA (api key and secret) "
    "or MANUAL_TOKEN (MONA_SDK_ACCESS_TOKEN)",
    "MONA_SDK_OIDC_CLIENT_SECRET": "OIDC is not supported: use AUTH_MODE=MONA or MANUAL_TOKEN",
    "MONA_SDK_OIDC_SCOPE": "OIDC is not supported: use AUTH_MODE=MONA or MANUAL_TOKEN",
    "SAMPLING_CONFIG_NAME": "sampling configs are not fetched from Mona: set "
    "MONA_SDK_SAMPLING_CONFIG or MONA_SDK_DEFAULT_SAMPLING_FACTOR",
    "SAMPLING_FACTORS_MAX_AGE_SECONDS": "sampling configs are not fetched from Mona: set "
    "MONA_SDK_SAMPLING_CONFIG or MONA_SDK_DEFAULT_SAMPLING_FACTOR",
}
# mona-client's own way of saying where data goes; with these set, a local file is wrong.
MONA_CLIENT_DESTINATION = ("MONA_HOST", "MONA_PORT", "MONA_USER_ID")


def with_fallbacks(env: Mapping[str, str]) -> Mapping[str, str]:
    """``env`` with each unset variable of ours filled from its mona_sdk/mona-client fallback."""
    filled = None
    for fallback, primary in FALLBACK_VARIABLES.items():
        if env.get(fallback, "").strip() and not env.get(primary, "").strip():
            filled = dict(env) if filled is None else filled
            filled[primary] = env[fallback]
    return env if filled is None else filled


def not_applying(env: Mapping[str, str]) -> dict[str, str]:
    """The set variables that mean nothing here, each with what to set instead."""
    return {var: why for var, why in NOT_APPLYING.items() if env.get(var, "").strip()}


_warned: set[str] = set()


def warn_not_applying(env: Mapping[str, str]) -> None:
    """Log, once per process and variable, each set variable that does not apply."""
    for var, why in not_applying(env).items():
        if var not in _warned:
            _warned.add(var)
            logger.warning("mona_middleware: %s is set but does not apply: %s", var, why)


def env_var(option: str) -> str | None:
    """The environment variable that sets ``option``."""
    return OPTIONS[option].env
