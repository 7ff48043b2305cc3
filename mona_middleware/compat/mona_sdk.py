"""mona_sdk 0.0.58's client API on this package's exporter: change the import, nothing else.

    from mona_middleware.compat.mona_sdk import Client, MonaSingleMessage

    client = Client(api_key, secret)
    client.export(MonaSingleMessage(message={"score": 0.9}, contextClass="MODEL", contextId="r1"))
    result = client.flush()  # wait for delivery: {"delivered": True, "sent": 1, ...}

What differs, on purpose: ``export``/``export_batch`` never make a request. They check
each message on the caller's thread and queue it; the exporter sends batches in the
background (retried, spooled when Mona is down). So their results say what was *queued*
(``"sent"`` counts messages handed to the exporter, ``"failed"`` those refused here, with
the reason by index in ``"failure_reasons"``); Mona's own answer comes later and
``flush()`` waits for it and returns it. mona_sdk's services API (``get_config``,
``upload_config``, ...) is not part of this package: those methods delegate to the real
mona_sdk when it is installed, and otherwise say to keep it; never an AttributeError.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .._api.batch import queue_batch
from .._runtime import process
from .._util.log import logger, refuse
from ..config import MonaConfig
from ..errors import MonaConfigError, MonaExportError

__all__ = [
    "SERVICES_METHODS",
    "AsyncClient",
    "Client",
    "MonaAuthenticationException",
    "MonaExportException",
    "MonaInitializationException",
    "MonaServiceException",
    "MonaSingleMessage",
]


class MonaExportException(MonaExportError):
    """mona_sdk's name: an export refused while ``raise_export_exceptions`` is on."""


class MonaAuthenticationException(MonaConfigError):
    """mona_sdk's name: the credentials were refused (``raise_authentication_exceptions``)."""


class MonaServiceException(Exception):
    """mona_sdk's name: a services call failed (``raise_service_exceptions``)."""


class MonaInitializationException(MonaConfigError):
    """mona_sdk's name: the client's arguments cannot work together."""


@dataclasses.dataclass
class MonaSingleMessage:
    """mona_sdk's message: the same fields, in the same order, ``sendTimestamp`` included.

    ``exportTimestamp`` and ``sendTimestamp`` are the same thing (mona_sdk renamed it);
    either is sent as the message's timestamp, ``exportTimestamp`` first.
    """

    message: dict[str, Any]
    contextClass: str
    contextId: str | None = None
    action: str | None = None
    sampleConfigName: str | None = None
    exportTimestamp: int | float | str | None = None
    sendTimestamp: int | float | str | None = None

    def get_dict(self) -> dict[str, Any]:
        """The fields as a dict, as mona_sdk's ``get_dict``."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


_UNSET: Any = object()

# mona_sdk's Client arguments -> our option of the same meaning. Arguments missing here
# are handled by the Client itself (see its docstring).
_OPTION_OF = {
    "api_key": "api_key",
    "secret": "secret",
    "user_id": "user_id",
    "access_token": "access_token",
    "auth_mode": "auth_mode",
    "auth_api_token_url": "auth_api_token_url",
    "refresh_token_url": "refresh_token_url",
    "should_use_refresh_tokens": "use_refresh_tokens",
    "num_of_retries_for_authentication": "auth_retries",
    "wait_time_for_authentication_retries": "auth_retry_wait",
    "override_rest_api_full_url": "rest_api_url",
    "override_rest_api_host": "rest_api_host",
    "should_use_ssl": "use_ssl",
    "should_log_failed_messages": "log_failed_messages",
    "default_sampling_rate": "sampling_rate",
    "context_class_to_sampling_rate": "sampling_rates",
}
# This client's own choices (the process's other exports keep theirs); unset, the
# variables of the same meaning decide, as in mona_sdk.
_RAISE_ARGUMENTS = (
    "raise_export_exceptions",
    "raise_authentication_exceptions",
    "raise_service_exceptions",
)

# mona_sdk's services API: Mona's app server (configs, insights, segments), not export.
SERVICES_METHODS = (
    "upload_config",
    "upload_config_per_context_class",
    "get_config",
    "get_suggested_config",
    "get_config_history",
    "get_sampling_factors",
    "create_sampling_factor",
    "validate_config",
    "validate_config_per_context_class",
    "get_insights",
    "get_ingested_data_for_a_specific_segment",
    "get_suggested_config_from_user_input",
    "get_aggregated_data_of_a_specific_segment",
    "get_aggregated_stats_of_a_specific_segmentation",
    "create_openai_context_class",
    "initiate_csv_upload_request",
)

_checked_credentials: dict[tuple[Any, ...], bool] = {}
_checked_lock = threading.Lock()
_STAT_KEYS = ("messages_sent", "messages_failed", "dropped_total", "messages_spooled")


def _options_of(given: dict[str, Any]) -> dict[str, Any]:
    """``configure()``'s options from the ``Client`` arguments given, as mona_sdk reads them
    (its one sampling method at a time)."""
    if given.get("sampling_config_name") and given.get("context_class_to_sampling_rate"):
        raise MonaInitializationException(
            "Only one sampling method can be used at a time. Either remove "
            "sampling_config_name or context_class_to_sampling_rate."
        )
    if given.get("sampling_config_name"):
        logger.warning(
            "mona_middleware: sampling_config_name=%r does not apply (sampling configs "
            "are not fetched from Mona); use context_class_to_sampling_rate",
            given["sampling_config_name"],
        )
    options = {_OPTION_OF[name]: value for name, value in given.items() if name in _OPTION_OF}
    if given.get("should_use_authentication") is False and "auth_mode" not in options:
        options["auth_mode"] = "NO_AUTH"
    return options


class Client:
    """mona_sdk 0.0.58's ``Client``: the same constructor, each argument honoured here.

    Arguments left out are read from the environment as mona_sdk reads them. With no
    arguments at all, the process's current configuration is used as it is (so a
    ``Client()`` per request restarts nothing); with some, they configure the process's
    exporter as ``mona_middleware.configure()`` would (one exporter per process).

    - ``api_key``, ``secret``, ``user_id``, ``access_token``, ``auth_mode``,
      ``should_use_authentication`` (False means ``NO_AUTH``), ``auth_api_token_url``,
      ``refresh_token_url``, ``should_use_refresh_tokens``,
      ``num_of_retries_for_authentication``, ``wait_time_for_authentication_retries``,
      ``override_rest_api_full_url``, ``override_rest_api_host``, ``should_use_ssl``,
      ``should_log_failed_messages``, ``default_sampling_rate``,
      ``context_class_to_sampling_rate``: the options of the same meaning.
    - ``raise_authentication_exceptions``: the credentials are checked once per process
      when the client is made (a token request, as mona_sdk's); refused ones raise
      ``MonaAuthenticationException``, else ``is_active()`` is False and exports refused.
    - ``raise_export_exceptions``: this client's refused exports raise
      ``MonaExportException``. ``raise_service_exceptions``: services calls raise.
    - ``filter_none_fields_on_export``: this client's default for ``filter_none_fields``
      (applied on the caller's thread; the process-wide
      ``MONA_SDK_FILTER_NONE_FIELDS_ON_EXPORT`` still filters every export).
    - ``sampling_config_name``: server-side sampling configs are not fetched; it is
      logged once as not applying (set ``context_class_to_sampling_rate`` instead).
    - ``override_app_server_host``, ``override_app_server_full_url``, ``oidc_scope``:
      used only by the services API, i.e. by the real mona_sdk it delegates to.
    """

    def __init__(
        self,
        api_key: str | None = _UNSET,
        secret: str | None = _UNSET,
        raise_authentication_exceptions: bool = _UNSET,
        raise_export_exceptions: bool = _UNSET,
        raise_service_exceptions: bool = _UNSET,
        num_of_retries_for_authentication: int = _UNSET,
        wait_time_for_authentication_retries: float = _UNSET,
        should_log_failed_messages: bool = _UNSET,
        should_use_ssl: bool = _UNSET,
        should_use_authentication: bool = _UNSET,
        auth_mode: str = _UNSET,
        override_rest_api_full_url: str | None = _UNSET,
        override_rest_api_host: str | None = _UNSET,
        override_app_server_host: str | None = _UNSET,
        override_app_server_full_url: str | None = _UNSET,
        user_id: str | None = _UNSET,
        filter_none_fields_on_export: bool = _UNSET,
        default_sampling_rate: float = _UNSET,
        context_class_to_sampling_rate: dict[str, float] | None = _UNSET,
        sampling_config_name: str | None = _UNSET,
        access_token: str | None = _UNSET,
        oidc_scope: str | None = _UNSET,
        auth_api_token_url: str = _UNSET,
        refresh_token_url: str = _UNSET,
        should_use_refresh_tokens: bool = _UNSET,
    ) -> None:
        given = {name: value for name, value in locals().items() if value is not _UNSET}
        given.pop("self")
        self._sdk_arguments = dict(given)  # for the real mona_sdk, if services are asked for
        options = _options_of(given)
        self._active = True
        defaults = _env_config()
        for name in _RAISE_ARGUMENTS:
            setattr(self, name, bool(given.get(name, getattr(defaults, name))))
        self.config = self._configure(options)
        self.should_log_failed_messages = bool(self.config.log_failed_messages)
        self.filter_none_fields_on_export = bool(
            given.get("filter_none_fields_on_export", self.config.filter_none_fields)
        )
        self._services: Any = None
        self._baseline = self._counters()
        if self._active:
            self._check_credentials()

    # -- set-up

    def _configure(self, options: dict[str, Any]) -> MonaConfig:
        try:
            return process.configure(**options) if options else process.config()
        except MonaConfigError as exc:
            if self.raise_authentication_exceptions:
                raise MonaAuthenticationException(str(exc)) from None
            logger.error("mona_middleware: the Mona client cannot work: %s", exc)
            self._active = False
            return process.config()

    def _check_credentials(self) -> None:
        """mona_sdk's initial authentication: one token request per process and key."""
        config = self.config
        name, _ = config.transport_choice()
        if name != "rest" or config.auth_mode != "MONA":
            return
        key = (config.api_key, config.secret, config.auth_api_token_url)
        with _checked_lock:
            known = _checked_credentials.get(key)
        if known is None:
            known = _token_works(config)
            with _checked_lock:
                _checked_credentials[key] = known
        if not known:
            self._active = False
            message = f"Mona's token endpoint {config.auth_api_token_url} refused the credentials"
            if self.raise_authentication_exceptions:
                raise MonaAuthenticationException(message)
            logger.error("mona_middleware: %s; this client exports nothing", message)

    # -- exporting

    def is_active(self) -> bool:
        """True while this client can export: usable settings, credentials not refused,
        and neither ``MONA_DISABLE_ALL`` nor the live kill switch on."""
        return self._active and not process.switched_off()

    def export(self, message: MonaSingleMessage, filter_none_fields: bool | None = None) -> bool:
        """Queue one message; True when it was queued (delivery is confirmed by ``flush()``).

        False (logged, naming the problem) when it is not a usable message or the client
        is not active; with ``raise_export_exceptions``, ``MonaExportException`` instead.
        """
        result = self.export_batch([message], filter_none_fields=filter_none_fields)
        # A dict when truthy (False is the only other answer); sampled out on purpose: True too.
        return bool(result) and result["failed"] == 0  # type: ignore[index]

    send_event = export

    def export_batch(
        self,
        events: Iterable[MonaSingleMessage],
        default_action: str | None = None,
        filter_none_fields: bool | None = None,
    ) -> dict[str, Any] | bool:
        """Queue messages; mona_sdk's result dict, describing the moment of return.

        ``{"total": entries not sampled out, "sent": queued, "failed": refused here,
        "failure_reasons": {"<index>": reason}}``. A message refused here (not a dict,
        no context class, a bad action) is named with its index and the others still go.
        Mona's answer comes later: ``flush()`` waits for it. Not an iterable of messages
        (or an inactive client): False, as mona_sdk answers.
        """
        if not self._active:
            return self._refused("Mona's client is not authenticated")
        filter_none = self.filter_none_fields_on_export
        if filter_none_fields is not None:
            filter_none = bool(filter_none_fields)
        outcome = queue_batch(events, default_action, filter_none=filter_none, raise_errors=False)
        if outcome is None:  # logged by queue_batch
            if self.raise_export_exceptions:
                raise MonaExportException("export_batch must get an iterable of MonaSingleMessage.")
            return False
        if outcome.disabled:
            return False  # switched off on purpose (MONA_DISABLE_ALL, the config file): quiet
        total = outcome.total - outcome.sampled_out
        failed = len(outcome.failures)
        result = {
            "total": total,
            "sent": total - failed,
            "failed": failed,
            "failure_reasons": dict(outcome.failures),
        }
        if failed and self.raise_export_exceptions:
            raise MonaExportException(f"Some messages didn't pass validation: {result}.")
        return result

    send_events_batch = export_batch

    def _refused(self, reason: str) -> bool:
        return refuse(
            reason,
            raising=self.raise_export_exceptions,
            error=MonaExportException,
            line="mona_middleware: %s",
        )

    def flush(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until what was queued is delivered; what happened since the last flush.

        ``{"delivered": everything answered in time, "sent": messages Mona accepted,
        "failed": refused by Mona, "dropped": lost (with reasons in ``mona_middleware
        .stats()``), "spooled": kept on disk to resend, "pending": still queued}``.
        The counts are the process's exporter's (every client and context shares it).
        """
        delivered = process.flush(timeout)
        now = self._counters()
        base, self._baseline = self._baseline, now
        if now[0] is not base[0]:  # a new exporter since: its counters started at zero
            base = (now[0], dict.fromkeys(_STAT_KEYS, 0))
        delta = {key: max(now[1][key] - base[1][key], 0) for key in _STAT_KEYS}
        snapshot = process.stats()
        return {
            "delivered": delivered,
            "sent": delta["messages_sent"],
            "failed": delta["messages_failed"],
            "dropped": delta["dropped_total"],
            "spooled": delta["messages_spooled"],
            "pending": snapshot["queued"] + snapshot["in_flight"],
            "failure_reasons": dict(snapshot["failure_reasons"]),
        }

    def _counters(self) -> tuple[Any, dict[str, int]]:
        snapshot = process.stats()
        return process.current_exporter(), {key: snapshot[key] for key in _STAT_KEYS}

    # -- mona_sdk's services API

    def _service(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            real = self._services_client()
        except ImportError:
            message = (
                f"{name}() is mona_sdk's services API, which mona_middleware does not "
                "provide: keep mona_sdk installed (pip install mona_sdk) and this call "
                "is passed to it"
            )
            if self.raise_service_exceptions:
                raise MonaServiceException(message) from None
            logger.error("mona_middleware: %s", message)
            return {"success": False, "data": None, "error_message": message}
        return getattr(real, name)(*args, **kwargs)

    def _services_client(self) -> Any:
        if self._services is None:
            import mona_sdk  # the real one: its services API, with the same arguments

            self._services = mona_sdk.Client(**self._sdk_arguments)
        return self._services

    def __getattr__(self, name: str) -> Any:
        """Any other public mona_sdk method: passed to the real mona_sdk, when installed."""
        try:
            import mona_sdk
        except ImportError:
            mona_sdk = None
        if name.startswith("_") or mona_sdk is None or not hasattr(mona_sdk.Client, name):
            raise AttributeError(
                f"{name!r} is not part of mona_middleware's mona_sdk API"
                + ("" if name.startswith("_") else "; keep mona_sdk for it")
            )
        return getattr(self._services_client(), name)


def _service_method(name: str) -> Callable[..., Any]:
    def method(self: Client, *args: Any, **kwargs: Any) -> Any:
        return self._service(name, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"mona_sdk's ``{name}``: delegated to the real mona_sdk (keep it installed)."
    return method


for _name in SERVICES_METHODS:
    setattr(Client, _name, _service_method(_name))


def _env_config() -> MonaConfig:
    return MonaConfig.resolve(strict=False)


def _token_works(config: MonaConfig) -> bool:
    """One token request with the exporter's own auth code (its retries included).

    False only when the credentials are refused: an unreachable endpoint is the
    exporter's to retry (batches wait in the queue or the spool), not a dead client.
    """
    import requests

    from ..transports.auth import AuthError, MonaTokenAuth

    stop = threading.Event()
    auth = MonaTokenAuth(config, wait=lambda seconds: stop.wait(seconds))
    try:
        with requests.Session() as session:
            auth.headers(session)
        return True
    except AuthError as exc:
        logger.error("mona_middleware: Mona authentication failed: %s", exc)
        return exc.transient


class AsyncClient(Client):
    """mona_sdk's ``AsyncClient``: every method also as ``<name>_async``, a coroutine.

    Exports never wait on the network, so ``export_async``/``export_batch_async`` run
    on the loop directly; ``flush_async`` and the services calls run in ``executor``
    (the loop's default when None), as mona_sdk runs them.
    """

    def __init__(
        self,
        *args: Any,
        event_loop: asyncio.AbstractEventLoop | None = None,
        executor: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._event_loop = event_loop
        self._executor = executor

    async def export_async(
        self,
        message: MonaSingleMessage,
        filter_none_fields: bool | None = None,
        event_loop: Any = None,
        executor: Any = None,
    ) -> bool:
        return self.export(message, filter_none_fields=filter_none_fields)

    async def export_batch_async(
        self,
        events: Iterable[MonaSingleMessage],
        default_action: str | None = None,
        filter_none_fields: bool | None = None,
        event_loop: Any = None,
        executor: Any = None,
    ) -> dict[str, Any] | bool:
        return self.export_batch(events, default_action, filter_none_fields)

    send_event_async = export_async
    send_events_batch_async = export_batch_async

    async def is_active_async(self, event_loop: Any = None, executor: Any = None) -> bool:
        return self.is_active()

    async def flush_async(
        self, timeout: float = 10.0, event_loop: Any = None, executor: Any = None
    ) -> dict[str, Any]:
        flushed: dict[str, Any] = await self._in_executor(
            self.flush, (timeout,), event_loop, executor
        )
        return flushed

    async def _in_executor(
        self, function: Callable[..., Any], args: tuple[Any, ...], event_loop: Any, executor: Any
    ) -> Any:
        loop = event_loop or self._event_loop or asyncio.get_running_loop()
        call = functools.partial(function, *args)
        return await loop.run_in_executor(executor or self._executor, call)


def _async_service_method(name: str) -> Callable[..., Any]:
    async def method(
        self: AsyncClient, *args: Any, event_loop: Any = None, executor: Any = None, **kwargs: Any
    ) -> Any:
        call = functools.partial(getattr(self, name), *args, **kwargs)
        return await self._in_executor(call, (), event_loop, executor)

    method.__name__ = f"{name}_async"
    method.__doc__ = f"``{name}`` in an executor, as mona_sdk's ``{name}_async``."
    return method


for _name in SERVICES_METHODS:
    setattr(AsyncClient, f"{_name}_async", _async_service_method(_name))
