"""Mona's REST export endpoint over keep-alive connections, one session per sender thread."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import threading
import time
from collections import Counter
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .._util import jsonwire
from ..config import MonaConfig
from .auth import AuthError, make_auth
from .base import SendResult, Transport
from .sizes import fit_messages

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# After these the backend may have stored the batch before failing to answer: a gateway
# that lost its upstream, or a server error mid-way. 408, 425, 429 and 503 say it was not
# taken; 409 is a backend that honours keys still working on the first send of this one.
MAYBE_STORED_STATUS = frozenset({500, 502, 504})
# Errors raised before any byte of the request left: a resend of such a batch is its first.
_NOT_SENT = (
    requests.exceptions.ConnectTimeout,
    requests.exceptions.SSLError,
    requests.exceptions.ProxyError,
    requests.exceptions.InvalidURL,
)


class MonaRestTransport(Transport):
    """POSTs ``{"userId", "messages"}`` to ``/export`` (or ``/monaExport`` with NO_AUTH).

    >>> from mona_middleware.config import MonaConfig
    >>> config = MonaConfig(api_key="k", secret="s", user_id="acme")
    >>> MonaRestTransport(config).export_url()
    'https://incomingacme.monalabs.io/export'
    """

    name = "rest"
    encoded_messages = True

    def __init__(self, config: MonaConfig) -> None:
        self._config = config
        self._closing = threading.Event()
        self._auth = make_auth(config, self._closing.wait)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def export_url(self) -> str | None:
        """Where batches go; None while the user id is still unknown (no token yet)."""
        config = self._config
        if config.rest_api_url:
            return config.rest_api_url
        host = config.rest_api_host
        if not host:
            user_id = self._auth.user_id()
            if not user_id:
                return None
            host = f"incoming{user_id}.monalabs.io"
        scheme = "https" if config.use_ssl else "http"
        return f"{scheme}://{host}/{self._auth.endpoint}"

    def send(self, messages: list[dict[str, Any]]) -> SendResult:
        total = len(messages)
        session = self._session()
        key = getattr(messages, "key", None)  # a WireBatch's idempotency key
        fields_dropped = 0
        for attempt in (1, 2):
            try:
                auth = self._auth.headers(self._session(for_tokens=True))
                headers = {"Content-Type": "application/json", **auth}
            except AuthError as exc:
                if exc.transient:
                    return SendResult.transient(total, f"auth: {exc}")
                return SendResult.rejected(total, f"auth: {exc}")
            if key:
                headers["Idempotency-Key"] = key
            url = self.export_url()
            if url is None:
                return SendResult.rejected(
                    total, "no Mona user id: set MONA_SDK_USER_ID or MONA_SDK_OVERRIDE_REST_API_URL"
                )
            try:
                body = _encode(self._auth.user_id(), messages)
                limit = self._config.max_message_bytes
                if len(body) > limit and (dropped := fit_messages(messages, limit)):
                    fields_dropped += dropped  # the batch is changed in place: once per batch
                    body = _encode(self._auth.user_id(), messages)
            except ValueError:
                return self._send_encodable(messages)
            if self._config.gzip:
                body = gzip.compress(body, compresslevel=5)
                headers["Content-Encoding"] = "gzip"
            try:
                response = session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=self._config.http_timeout,
                    **self._environment(url),
                )
            except requests.RequestException as exc:
                return SendResult.transient(
                    total, f"connection: {type(exc).__name__}", ambiguous=_maybe_received(exc)
                )
            if response.status_code == 401 and attempt == 1 and self._auth.refreshable:
                self._auth.invalidate()  # the token expired early or was revoked: once more
                continue
            result = parse_response(response, total)
            result.fields_dropped = fields_dropped
            return result
        return SendResult.rejected(total, "HTTP 401 after a fresh token", status=401)

    def _send_encodable(self, messages: list[dict[str, Any]]) -> SendResult:
        """One message JSON cannot carry (e.g. an int of 5,000 digits) must not sink the
        batch: send the others and count that one as refused, with the reason."""
        good: list[dict[str, Any]] = []
        reasons: Counter[str] = Counter()
        for message in messages:
            try:
                jsonwire.encoded(message)
                good.append(message)
            except ValueError as exc:
                reasons[f"not JSON: {_short(str(exc))}"] += 1
        if good and hasattr(messages, "key"):  # keep the batch's key and what is known of it
            # a WireBatch (its key), whose type takes these arguments
            good = type(messages)(good, key=messages.key, ambiguous=messages.ambiguous)  # type: ignore[call-overload, attr-defined]
        result = self.send(good) if good else SendResult(total=0)
        bad = len(messages) - len(good)
        result.total += bad
        result.failed += bad
        result.failure_reasons.update(reasons)
        if result.retryable:  # the good ones will be retried: the bad ones are settled now
            result.error = result.error or "not JSON"
        else:
            result.error = result.error or f"{bad} message(s) not JSON"
        return result

    def interrupt(self) -> None:
        self._closing.set()  # token retries stop waiting: a send stuck in them returns

    def close(self) -> None:
        self._closing.set()
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def after_fork(self) -> None:
        # The parent's pooled sockets must not be shared; tokens stay valid in the child.
        self._local = threading.local()
        self._sessions = []
        self._sessions_lock = threading.Lock()
        if hasattr(self._auth, "after_fork"):
            self._auth.after_fork()

    def spool_key(self) -> str:
        config = self._config
        where = config.rest_api_url or config.rest_api_host or "monalabs.io"
        who = config.user_id or hashlib.sha256((config.api_key or "").encode()).hexdigest()[:12]
        return f"rest|{config.auth_mode}|{where}|{who}"

    def describe(self) -> str:
        return f"Mona REST ({self._config.auth_mode}) {self.export_url() or '(user id pending)'}"

    def _session(self, for_tokens: bool = False) -> requests.Session:
        """This thread's keep-alive session: one for exports, one for the token endpoint.

        requests reads the environment (proxies, CA bundle) on every request of a session
        that trusts it: 0.7 ms per POST measured, 1.4 µs per message. The export session
        reads it once per URL instead (``_environment``); token requests, a few a day,
        keep requests' own behaviour.
        """
        name = "token_session" if for_tokens else "session"
        session = getattr(self._local, name, None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=2, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            if not for_tokens:
                session.trust_env = False
                self._local.environment = {}
            setattr(self._local, name, session)
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _environment(self, url: str) -> dict[str, Any]:
        """``proxies``, ``verify`` and ``cert`` from the environment for ``url``, as requests
        would find them (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE...), read once."""
        known = self._local.environment
        settings: dict[str, Any] | None = known.get(url)
        if settings is None:
            with requests.Session() as probe:
                found = probe.merge_environment_settings(url, {}, None, None, None)
            settings = {key: found[key] for key in ("proxies", "verify", "cert")}
            if not url.lower().startswith("https:") and isinstance(settings["verify"], str):
                # Plain HTTP verifies nothing, but requests stats a CA bundle path on every
                # POST (os.path.isdir), a system call that gives the GIL away: the sender
                # then waits a switch interval (5 ms) to get it back from a busy app.
                settings["verify"] = True
            known[url] = settings
        return settings


def _encode(user_id: str | None, messages: list[Any]) -> bytes:
    """The request body, mona_sdk's shape; messages ``prepare`` encoded are joined as is."""
    body = jsonwire.array(messages)
    return b'{"userId":' + jsonwire.dumps(user_id) + b',"messages":' + body + b"}"


def _maybe_received(exc: requests.RequestException) -> bool:
    """Whether the backend may have received the whole request before this error.

    A refused or failed connection sent nothing; a read timeout, or a connection lost
    after the body went out, leaves the batch's fate unknown.
    """
    if isinstance(exc, _NOT_SENT):
        return False
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return not isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _replayed(response: requests.Response) -> bool | None:
    """The backend's ``Idempotent-Replayed`` header: None when it did not send one."""
    value = response.headers.get("Idempotent-Replayed")
    if value is None:
        return None
    return value.strip().lower() == "true"


def parse_response(response: requests.Response, total: int) -> SendResult:
    """Read Mona's answer: 2xx, partial ``failed``/``failure_reasons``, or ``topLevelError``."""
    result = _parse_response(response, total)
    result.replayed = _replayed(response)
    return result


def _parse_response(response: requests.Response, total: int) -> SendResult:
    status = response.status_code
    if 200 <= status < 300:
        return SendResult.ok(total, status)
    try:
        info = response.json()
    except ValueError:
        info = None
    if not isinstance(info, dict):
        info = {}
    retryable = status in RETRYABLE_STATUS
    failed = _int(info.get("failed"), total) if "failed" in info else None
    # A 429/5xx is retried, whatever its body says, unless the server says it accepted
    # part of the batch: resending that part would store its ADDs twice.
    if retryable and (failed is None or failed >= total):
        error = f"HTTP {status}"
        if info.get("topLevelError"):
            error += f": {_short(info['topLevelError'])}"
        return SendResult.transient(
            total,
            error,
            status,
            retry_after=_retry_after(response),
            ambiguous=status in MAYBE_STORED_STATUS,
        )
    if info.get("topLevelError"):
        return SendResult.rejected(total, f"topLevelError: {_short(info['topLevelError'])}", status)
    if failed is not None:
        reasons = _count_reasons(info.get("failure_reasons"), failed)
        return SendResult(
            total=total,
            sent=total - failed,
            failed=failed,
            failure_reasons=reasons,
            status=status,
            error=f"{failed} of {total} messages rejected",
        )
    detail = info.get("errors") or info.get("error") or info.get("message") or info.get("detail")
    reason = f"HTTP {status}: {_short(detail)}" if detail else f"HTTP {status}"
    return SendResult.rejected(total, reason, status)


def _int(value: Any, total: int) -> int:
    """A count from the server's answer, within [0, total]; unreadable means all."""
    try:
        return min(max(int(value), 0), total)
    except (TypeError, ValueError):
        return total


def _count_reasons(reasons: Any, failed: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    if isinstance(reasons, dict):
        for reason in reasons.values():
            counts[_short(reason)] += 1
    elif isinstance(reasons, list):
        counts.update(_short(reason) for reason in reasons)
    elif reasons:
        counts[_short(reasons)] = failed
    if sum(counts.values()) < failed:
        counts["unspecified"] += failed - sum(counts.values())
    return counts


def _short(reason: Any, limit: int = 200) -> str:
    text = reason if isinstance(reason, str) else json.dumps(reason, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from ``Retry-After`` (a number or an HTTP date); None when unusable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    # "nan" or "inf" would make the retry wait return at once, over and over.
    return max(seconds, 0.0) if math.isfinite(seconds) else None
