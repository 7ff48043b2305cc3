"""Mona's three auth modes: a token from key+secret (refreshed), a manual token, no auth.

Tokens live in the transport instance (not a module dict as in mona_sdk) and never
reach a log line: errors name the endpoint and status, never a body or header.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from .._util.log import logger
from ..config import MonaConfig

# Refresh this long before expiry; short-lived tokens refresh at half their life instead.
REFRESH_MARGIN = 30 * 60.0


class AuthError(Exception):
    """No usable token; ``transient`` when asking again later may work."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


def tenant_of(token: str | None) -> str | None:
    """The ``tenantId`` claim of a JWT (the Mona user id), read without verifying it."""
    try:
        payload = token.split(".")[1]  # type: ignore[union-attr]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        tenant = claims.get("tenantId")
        return str(tenant) if tenant else None
    except Exception:
        return None


class NoAuth:
    """``AUTH_MODE=NO_AUTH``: no header, the ``monaExport`` endpoint, a given user id."""

    endpoint = "monaExport"
    refreshable = False

    def __init__(self, config: MonaConfig) -> None:
        self._user_id = config.user_id

    def headers(self, session: requests.Session) -> dict[str, str]:
        return {}

    def user_id(self) -> str | None:
        return self._user_id

    def invalidate(self) -> None:
        pass


class ManualTokenAuth(NoAuth):
    """``AUTH_MODE=MANUAL_TOKEN``: a bearer token the user manages."""

    endpoint = "export"

    def __init__(self, config: MonaConfig) -> None:
        self._token = config.access_token or ""
        self._user_id = config.user_id or tenant_of(self._token)

    def headers(self, session: requests.Session) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}


class MonaTokenAuth(NoAuth):
    """``AUTH_MODE=MONA``: a token for key+secret, refreshed before it expires."""

    endpoint = "export"
    refreshable = True

    def __init__(self, config: MonaConfig, wait: Callable[[float], bool]) -> None:
        self._config = config
        self._wait = wait  # returns True when the transport is closing: stop retrying
        self._lock = threading.Lock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._refresh_at = 0.0
        self._user_id = config.user_id

    def headers(self, session: requests.Session) -> dict[str, str]:
        with self._lock:
            if self._access is None or time.monotonic() >= self._refresh_at:
                self._renew(session)
            return {"Authorization": f"Bearer {self._access}"}

    def user_id(self) -> str | None:
        return self._user_id

    def invalidate(self) -> None:
        """The backend said 401: renew on the next send."""
        with self._lock:
            self._refresh_at = 0.0

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def _renew(self, session: requests.Session) -> None:
        config = self._config
        if self._refresh and config.use_refresh_tokens:
            try:
                self._store(
                    self._request(
                        session, config.refresh_token_url, {"refreshToken": self._refresh}
                    )
                )
                return
            except AuthError as exc:
                logger.info("mona_middleware: token refresh failed (%s); asking for a new one", exc)
        body = {"clientId": config.api_key, "secret": config.secret}
        for attempt in range(config.auth_retries + 1):
            try:
                self._store(self._request(session, config.auth_api_token_url, body))
                return
            except AuthError as exc:
                if not exc.transient or attempt == config.auth_retries:
                    raise
                if self._wait(config.auth_retry_wait):
                    raise
        raise AuthError("no token", transient=True)  # unreachable: the loop returns or raises

    def _request(self, session: requests.Session, url: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = session.post(url, json=body, timeout=self._config.http_timeout)
        except requests.RequestException as exc:
            raise AuthError(f"token endpoint unreachable: {type(exc).__name__}", True) from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise AuthError(f"token endpoint answered HTTP {response.status_code}", True)
        if not response.ok:
            raise AuthError(
                f"token endpoint refused the credentials: HTTP {response.status_code}", False
            )
        try:
            data: dict[str, Any] = response.json()
            if not data.get("accessToken"):
                raise ValueError
            return data
        except ValueError:
            raise AuthError("token endpoint answered without an accessToken", False) from None

    def _store(self, data: dict[str, Any]) -> None:
        self._access = str(data["accessToken"])
        self._refresh = data.get("refreshToken") or self._refresh
        try:
            lifetime = max(float(data["expiresIn"]), 0.0)
        except (KeyError, TypeError, ValueError):
            lifetime = 4 * 3600.0  # what Mona's tokens lived in 2025
        self._refresh_at = time.monotonic() + max(lifetime - min(REFRESH_MARGIN, lifetime / 2), 0)
        self._user_id = self._config.user_id or tenant_of(self._access)
        logger.debug("mona_middleware: got a Mona access token valid for %.0f s", lifetime)


def make_auth(config: MonaConfig, wait: Callable[[float], bool]) -> NoAuth:
    if config.auth_mode == "NO_AUTH":
        return NoAuth(config)
    if config.auth_mode == "MANUAL_TOKEN":
        return ManualTokenAuth(config)
    return MonaTokenAuth(config, wait)
