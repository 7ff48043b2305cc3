"""The collector's HTTP endpoints: Mona's token and export protocol, a JSON read API, a UI.

Routes are a table, so what the server answers is readable in one place. The export
and token endpoints answer errors in the shapes the ``mona_sdk`` parses
(``topLevelError`` and ``errors``); the read API answers ``{"error": ...}``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from .httpbase import HttpError, JsonRequestHandler
from .store import Store
from .tokens import ACCESS, REFRESH, TokenIssuer
from .validate import BatchError, parse_batch

TOKEN_PATH = "/identity/resources/auth/v1/api-token"
REFRESH_PATH = TOKEN_PATH + "/token/refresh"
STATIC_DIR = Path(__file__).with_name("static")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
ROUTES: dict[str, dict[str, str]] = {
    TOKEN_PATH: {"POST": "token"},
    REFRESH_PATH: {"POST": "refresh"},
    "/export": {"POST": "export"},
    "/monaExport": {"POST": "mona_export"},
    "/": {"GET": "index"},
    "/api/health": {"GET": "health"},
    "/api/classes": {"GET": "classes"},
    "/api/contexts": {"GET": "contexts"},
    "/api/summary": {"GET": "summary"},
}
PREFIX_ROUTES: tuple[tuple[str, dict[str, str]], ...] = (
    ("/api/contexts/", {"GET": "context"}),
    ("/static/", {"GET": "static"}),
)
MAX_LIMIT = 1000
BEARER = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class ServerConfig:
    """Everything a request handler needs, shared by all handler threads."""

    store: Store
    issuer: TokenIssuer
    require_auth: bool
    allow_no_auth: bool = False
    token_ttl: float = 4 * 3600.0
    max_body: int = 10 * 1024 * 1024
    # A local dev server (loopback, not strict): any key/secret gets a token, any user id
    # is stored, each in its own store; ``accepted`` hears of each new key and user id.
    accept_any: bool = False
    store_for: Callable[[str], Store] | None = None
    accepted: Callable[[str, str], None] | None = None
    users: Callable[[], list[str]] | None = None

    def store_of(self, user_id: str | None) -> Store:
        """The store holding ``user_id``'s contexts (the collector's own by default)."""
        if user_id is None or user_id == self.issuer.user_id or self.store_for is None:
            return self.store
        return self.store_for(user_id)


class CollectorHTTPServer(ThreadingHTTPServer):
    """A threaded server carrying the collector's config; IPv6 when the host is."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: ServerConfig) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.config = config
        super().__init__(address, CollectorHandler)


def _route(path: str) -> tuple[dict[str, str], str] | None:
    if path in ROUTES:
        return ROUTES[path], ""
    for prefix, methods in PREFIX_ROUTES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return methods, path[len(prefix) :]
    return None


class CollectorHandler(JsonRequestHandler):
    """Dispatches a request through ``ROUTES`` to a ``route_<name>`` method."""

    @property
    def config(self) -> ServerConfig:
        return cast(CollectorHTTPServer, self.server).config

    def handle_request(self) -> None:
        self.max_body = self.config.max_body
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        found = _route(url.path)
        if found is None:
            raise HttpError(404, f"no such path: {url.path}")
        methods, rest = found
        method = "GET" if self.command == "HEAD" else self.command
        if method not in methods:
            allowed = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else methods))
            raise HttpError(405, f"{self.command} is not allowed here", {"Allow": allowed})
        getattr(self, "route_" + methods[method])(rest)

    def error_body(self, message: str) -> dict[str, Any]:
        path = urlsplit(getattr(self, "path", "") or "").path
        if path in ("/export", "/monaExport"):
            return {"topLevelError": message}
        if path in (TOKEN_PATH, REFRESH_PATH):
            return {"errors": [message]}
        return {"error": message}

    # -- Mona's protocol ---------------------------------------------------------------

    def _token_field(self, name: str) -> tuple[dict[str, Any], Any]:
        body = self.read_json()
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        return body, body.get(name)

    def route_token(self, _: str) -> None:
        body, client_id = self._token_field("clientId")
        config = self.config
        secret = body.get("secret")
        if config.accept_any:
            if not (isinstance(client_id, str) and client_id and isinstance(secret, str)):
                raise HttpError(401, "clientId and secret must be strings")
            if client_id != config.issuer.api_key and config.accepted is not None:
                config.accepted("api key", client_id)
        elif not config.issuer.credentials_match(client_id, secret):
            raise HttpError(401, "wrong clientId or secret")
        self.send_json(200, config.issuer.token_response(config.token_ttl))

    def route_refresh(self, _: str) -> None:
        _, token = self._token_field("refreshToken")
        if not self.config.issuer.verify(token, REFRESH):
            raise HttpError(401, "refreshToken is invalid or expired")
        self.send_json(200, self.config.issuer.token_response(self.config.token_ttl))

    def _bearer_token(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def route_export(self, _: str) -> None:
        token = self._bearer_token()
        if self.config.accept_any and token:
            pass  # a local dev server: any token (e.g. MANUAL_TOKEN's own) will do
        elif not self.config.issuer.verify(token, ACCESS):
            raise HttpError(401, "a valid Bearer access token is required", BEARER)
        self._ingest()

    def route_mona_export(self, _: str) -> None:
        if self.config.require_auth and not self.config.allow_no_auth:
            raise HttpError(
                401, "monaExport (no auth) is off on a non-loopback host; use /export", BEARER
            )
        self._ingest()

    def _ingest(self) -> None:
        try:
            batch = parse_batch(self.read_json())
        except BatchError as exc:
            raise HttpError(400, str(exc)) from None
        config = self.config
        if batch.user_id != config.issuer.user_id and not config.accept_any:
            raise HttpError(403, f"userId {batch.user_id!r} is not this collector's user id")
        batch_id, unstored = config.store_of(batch.user_id).add_batch(batch.messages)
        failures = {**batch.failures, **{str(index): why for index, why in unstored.items()}}
        failures = dict(sorted(failures.items(), key=lambda item: int(item[0])))
        body = {"total": batch.total, "failed": len(failures), "batchId": batch_id}
        if failures:
            self.send_json(400, {**body, "failure_reasons": failures})
        else:
            self.send_json(200, body)

    # -- read API and UI ---------------------------------------------------------------

    def _authorize_read(self) -> None:
        if not self.config.require_auth:
            return
        token = self._bearer_token() or (self.query.get("token") or [None])[0]
        if not self.config.issuer.verify(token, ACCESS):
            raise HttpError(401, "a token is required: Authorization: Bearer or ?token=", BEARER)

    def _param(self, name: str, required: bool = False) -> str | None:
        values = self.query.get(name)
        if required and not values:
            raise HttpError(400, f"query parameter {name!r} is required")
        return values[0] if values else None

    def _store(self) -> Store:
        """The store the read API shows: ``?user=<user id>``, else the collector's own."""
        user = self._param("user")
        if user and self.config.users is not None and user not in self.config.users():
            raise HttpError(404, f"no data for user id {user!r}")
        return self.config.store_of(user)

    def route_health(self, _: str) -> None:
        self._authorize_read()
        store = self._store()
        counts = {"messages": store.message_count(), "contexts": store.context_count()}
        user_id = self._param("user") or self.config.issuer.user_id
        users = self.config.users() if self.config.users else [self.config.issuer.user_id]
        self.send_json(200, {"status": "ok", "user_id": user_id, "users": users, **counts})

    def route_classes(self, _: str) -> None:
        self._authorize_read()
        self.send_json(200, {"classes": self._store().classes()})

    def route_contexts(self, _: str) -> None:
        self._authorize_read()
        text = self._param("limit") or "50"
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise HttpError(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        rows = self._store().contexts(self._param("class"), int(text))
        self.send_json(200, {"contexts": rows})

    def route_context(self, rest: str) -> None:
        self._authorize_read()
        context_class, slash, context_id = rest.partition("/")
        if not slash or not context_id:
            raise HttpError(404, "use /api/contexts/<class>/<id>")
        found = self._store().context(unquote(context_class), unquote(context_id))
        if found is None:
            raise HttpError(404, "no such context")
        self.send_json(200, found)

    def route_summary(self, _: str) -> None:
        self._authorize_read()
        context_class = cast(str, self._param("class", required=True))
        self.send_json(200, self._store().summary(context_class))

    def route_index(self, _: str) -> None:
        self._authorize_read()
        self._send_static("index.html")

    def route_static(self, name: str) -> None:
        # The UI's code and style carry no data, so they are served without a token.
        self._send_static(name)

    def _send_static(self, name: str) -> None:
        path = STATIC_DIR / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise HttpError(404, f"no such file: {name}")
        content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        self.send_bytes(200, path.read_bytes(), content_type)
