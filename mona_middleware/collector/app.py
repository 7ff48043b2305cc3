"""``Collector``: the local Mona-compatible server as a Python object.

Tests, the demo and the CLI all start the same object, so what a developer sees in the
browser is exactly what the test suite checks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import quote

from .server import (
    REFRESH_PATH,
    TOKEN_PATH,
    CollectorHTTPServer,
    ServerConfig,
    is_loopback,
)
from .store import Store
from .tokens import ACCESS, TokenIssuer
from .validate import MAX_FIELDS, MAX_MESSAGES

DEFAULT_TOKEN_TTL = 4 * 3600.0
_log = logging.getLogger("mona_middleware.collector")
DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_MAX_VALUES = 1_000_000
_CREDENTIALS_KEY = "dev_credentials"
# How many distinct api keys and user ids are announced; past it, a client minting a
# new one per request costs no memory (and the console is not flooded).
MAX_ANNOUNCED = 10_000

__all__ = ["Collector", "is_loopback"]


def _log_accepted(kind: str, value: str) -> None:
    _log.info("collector: accepted %s %r (a local collector takes any)", kind, value)


def _url_host(host: str) -> str:
    # A wildcard bind is reachable on loopback; clients cannot connect to 0.0.0.0.
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


class Collector:
    """A Mona-compatible collector serving from a daemon thread.

    >>> with Collector() as collector:                       # doctest: +SKIP
    ...     os.environ.update(collector.env())
    ...     collector.wait_for_messages(1, timeout=5)

    Without ``api_key``/``secret`` a dev pair is generated once and kept in the
    database, so restarting on the same file keeps clients' credentials (and tokens)
    valid. ``require_auth`` (a token on every route, the page included; ``/monaExport``
    off unless ``allow_no_auth``) defaults to "host is not loopback"; the command
    line's ``--strict`` turns it on with ``strict``.

    Bound to loopback and not ``strict``, it is a local dev server, as localstack is
    for AWS: any api key and secret get a token, any token is taken and any user id is
    stored, each user id's contexts apart (one database for all of them), so an app
    keeps its own settings. ``accepted(kind, value)`` hears of each new api key and
    user id (never a secret); by default they are logged. Elsewhere, or ``strict``,
    only the collector's own credentials and user id work.

    Bound to loopback, it answers only requests whose ``Host`` is a loopback name or
    address, or one of ``allowed_hosts`` (``"*"``: any); bound elsewhere, any host, as
    every route needs a token there. ``max_messages``, ``max_fields`` and ``max_values``
    bound what one request may make it do (413 beyond them).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db: str = ":memory:",
        api_key: str | None = None,
        secret: str | None = None,
        user_id: str = "local",
        *,
        require_auth: bool | None = None,
        allow_no_auth: bool = False,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        max_body: int = DEFAULT_MAX_BODY,
        strict: bool = False,
        accepted: Callable[[str, str], None] | None = None,
        allowed_hosts: Iterable[str] | None = None,
        max_messages: int = MAX_MESSAGES,
        max_fields: int = MAX_FIELDS,
        max_values: int = DEFAULT_MAX_VALUES,
    ) -> None:
        if (api_key is None) != (secret is None):
            raise ValueError("give both api_key and secret, or neither")
        if not user_id:
            raise ValueError("user_id must be a non-empty string")
        self.host = host
        self.store = Store(db, user_id)
        if api_key is None or secret is None:
            api_key, secret = self._dev_credentials()
        self.issuer = TokenIssuer(api_key, secret, user_id)
        self.require_auth = not is_loopback(host) if require_auth is None else require_auth
        self.accept_any = not strict and not self.require_auth and is_loopback(host)
        self.allowed_hosts = self._hosts(allowed_hosts)
        self._db = db
        self._seen: set[tuple[str, str]] = set()
        self._seen_lock = threading.Lock()
        self._accepted = accepted or _log_accepted
        self._import_user_files()
        self._config = self._server_config(
            allow_no_auth, token_ttl, max_body, max_messages, max_fields, max_values
        )
        self._port = port
        self._server: CollectorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _server_config(
        self,
        allow_no_auth: bool,
        token_ttl: float,
        max_body: int,
        max_messages: int,
        max_fields: int,
        max_values: int,
    ) -> ServerConfig:
        """What the HTTP server's handlers read: this collector's store, issuer and rules."""
        return ServerConfig(
            self.store,
            self.issuer,
            self.require_auth,
            allow_no_auth,
            token_ttl,
            max_body,
            accept_any=self.accept_any,
            accepted=self._accept,
            allowed_hosts=self.allowed_hosts,
            max_messages=max_messages,
            max_fields=max_fields,
            max_values=max_values,
        )

    def _hosts(self, names: Iterable[str] | None) -> frozenset[str] | None:
        if names is None:
            return frozenset() if is_loopback(self.host) else None
        chosen = {name.strip().lower().strip("[]").rstrip(".") for name in names}
        return None if "*" in chosen else frozenset(chosen)

    def _import_user_files(self) -> None:
        """Fold the per-user-id files an earlier version kept next to ``db``
        (``<db>.<user id>.sqlite3``) into the database, once; each is then renamed
        ``.imported`` so nothing reads it twice and nothing is lost."""
        if self._db == ":memory:":
            return
        base, ext = os.path.splitext(self._db)
        ext = ext or ".sqlite3"
        folder, stem = os.path.split(base)
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir(folder or ".")):
                user = name[len(stem) + 1 : len(name) - len(ext)]
                if not (name.startswith(stem + ".") and name.endswith(ext) and user):
                    continue
                path = os.path.join(folder, name)
                try:
                    count = self.store.import_v1_file(path, user)
                except sqlite3.Error as exc:
                    _log.warning("collector: %s is not a collector file to import: %s", path, exc)
                    continue
                os.replace(path, path + ".imported")
                _log.info("collector: imported %d messages of user id %r from %s",
                          count, user, path)  # fmt: skip

    def user_ids(self) -> list[str]:
        """The user ids with data here, the one that sent last first."""
        return [found["user_id"] for found in self.store.users()]

    def _accept(self, kind: str, value: str) -> None:
        with self._seen_lock:
            first = (kind, value) not in self._seen and len(self._seen) < MAX_ANNOUNCED
            if first:
                self._seen.add((kind, value))
        if first:
            self._accepted(kind, value)

    def _dev_credentials(self) -> tuple[str, str]:
        stored = self.store.get_meta(_CREDENTIALS_KEY)
        if stored:
            pair = json.loads(stored)
            return pair["api_key"], pair["secret"]
        api_key, secret = "dev-" + secrets.token_hex(8), secrets.token_urlsafe(24)
        self.store.set_meta(_CREDENTIALS_KEY, json.dumps({"api_key": api_key, "secret": secret}))
        return api_key, secret

    def start(self) -> Collector:
        """Bind (``port=0`` picks a free port) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("this collector is already started")
        self._server = CollectorHTTPServer((self.host, self._port), self._config)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="mona-collector",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the database; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            self._shutdown(server, timeout)
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.store.close()

    def _shutdown(self, server: CollectorHTTPServer, timeout: float) -> None:
        # serve_forever() notices shutdown() only when its select() wakes up; a
        # throwaway connection wakes it at once, so stop() takes milliseconds, not a
        # poll interval, while an idle collector still sleeps soundly.
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        deadline = time.monotonic() + timeout
        while stopper.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection((_url_host(self.host).strip("[]"), self._port), 1).close()
            stopper.join(0.02)

    def __enter__(self) -> Collector:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def api_key(self) -> str:
        return self.issuer.api_key

    @property
    def secret(self) -> str:
        return self.issuer.secret

    @property
    def user_id(self) -> str:
        return self.issuer.user_id

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("start() the collector first: the port is chosen on bind")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``."""
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def export_url(self) -> str:
        return self.url + "/export"

    @property
    def noauth_url(self) -> str:
        return self.url + "/monaExport"

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def refresh_url(self) -> str:
        return self.url + REFRESH_PATH

    def access_token(self, ttl: float = DEFAULT_TOKEN_TTL) -> str:
        """A fresh access token, e.g. for the read API of a non-loopback collector."""
        return self.issuer.issue(ACCESS, ttl)

    def ui_url(self, ttl: float = 7 * 24 * 3600.0) -> str:
        """The browser page's URL, with a token in it when the collector requires one."""
        return self.url + (f"/?token={self.access_token(ttl)}" if self.require_auth else "/")

    def user_url(self, user_id: str) -> str:
        """The page showing ``user_id``'s data (a token in it when one is required)."""
        return self.ui_url() + "#user=" + quote(user_id, safe="")

    def env(self) -> dict[str, str]:
        """The ``MONA_SDK_*`` variables that point ``mona_sdk`` or mona_middleware here."""
        return {
            "MONA_SDK_API_KEY": self.api_key,
            "MONA_SDK_SECRET": self.secret,
            "MONA_SDK_USER_ID": self.user_id,
            "MONA_SDK_AUTH_API_TOKEN_URL": self.token_url,
            "MONA_SDK_REFRESH_TOKEN_URL": self.refresh_url,
            "MONA_SDK_OVERRIDE_REST_API_URL": self.export_url,
        }

    def wait_for_messages(
        self, count: int, timeout: float = 5.0, user_id: str | None = None
    ) -> bool:
        """True once ``count`` messages are stored (of every user id, or of ``user_id``);
        False after ``timeout``."""
        return self.store.wait_for_messages(count, timeout, user_id)

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"<Collector {where} db={self.store.path!r}>"
